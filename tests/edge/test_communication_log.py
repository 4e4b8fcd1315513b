"""The communication log keeps the newest frames per charger and no more."""

from __future__ import annotations

import asyncio

from edge.clock import ManualClock
from edge.journal import Journal, Store
from edge.ocpp.communication_log import CommunicationLog


async def test_bounded_per_charger_and_frames_cut(tmp_path):
    async with Journal(str(tmp_path / "j.sqlite")) as journal:
        runner = asyncio.create_task(journal.run())
        comm = CommunicationLog(journal, ManualClock(), keep_per_charger=100, max_frame_chars=300)
        for i in range(250):
            comm.record("CP-1", "in", f'[2,"{i}","Heartbeat",{{}}]')
            if i % 60 == 0:
                await comm.flush()
        comm.record("CP-2", "out", "x" * 1000)
        await comm.flush()
        cp1 = await journal.read(Store.log, "communication", "CP-1", 1000)
        cp2 = await journal.read(Store.log, "communication", "CP-2", 1000)
        runner.cancel()
    assert len(cp1) == 100
    assert cp1[0]["frame"] == '[2,"249","Heartbeat",{}]' and cp1[-1]["frame"] == '[2,"150","Heartbeat",{}]'
    assert cp2[0]["frame"].startswith("x" * 300) and "700 more characters" in cp2[0]["frame"]


async def test_memory_buffer_is_bounded_when_journal_lags(tmp_path):
    async with Journal(str(tmp_path / "j.sqlite")) as journal:
        comm = CommunicationLog(journal, ManualClock(), keep_per_charger=100, max_frame_chars=300, max_buffered=10)
        for i in range(25):
            comm.record("CP-1", "in", str(i))
        assert comm.dropped == 15
