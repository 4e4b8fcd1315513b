"""The edge killed with SIGKILL mid-transaction and restarted: the charger
reconnects and the transaction completes with no loss and no duplicate."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import sys
from pathlib import Path

from ocpp.v16 import call

from tests.edge.conftest import PASSWORD, free_port, site_toml
from tests.edge.conftest import Charger, basic
from websockets.asyncio.client import connect


@contextlib.asynccontextmanager
async def edge_process(config: Path, state: Path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge", "run", "--config", str(config), "--state-dir", str(state),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    lines = []
    try:
        while True:  # wait for the edge to say it is ready (or to die)
            line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
            lines.append(line)
            assert line, f"edge exited before ready:\n{''.join(lines)}"
            if "edge ready" in line:
                break
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


@contextlib.asynccontextmanager
async def connected(port: int):
    async with connect(f"ws://127.0.0.1:{port}/ocpp/CP-1", subprotocols=["ocpp1.6"],
                       additional_headers=basic("CP-1", PASSWORD)) as ws:
        cp = Charger("CP-1", ws)
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()


def meter(tx: int, wh: int, at: str) -> call.MeterValues:
    return call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[{"timestamp": at, "sampledValue": [
        {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        {"value": "16", "measurand": "Current.Import", "unit": "A", "phase": "L1"}]}])


async def test_sigkill_mid_transaction(tmp_path):
    port = free_port()
    config = tmp_path / "site.toml"
    config.write_text(site_toml(tmp_path, ocpp_port=port))
    start = call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=100, timestamp="2026-11-23T10:00:00Z")

    async with edge_process(config, tmp_path) as proc:
        async with connected(port) as cp:
            tx = (await cp.call(start)).transaction_id
            await cp.call(meter(tx, 1100, "2026-11-23T10:10:00Z"))
            await cp.call(meter(tx, 2100, "2026-11-23T10:20:00Z"))
            proc.send_signal(signal.SIGKILL)  # power cut: no shutdown code runs
            await proc.wait()

    async with edge_process(config, tmp_path):
        async with connected(port) as cp:
            # The charger never got our last answer for all it knows: it retries.
            assert (await cp.call(start)).transaction_id == tx
            await cp.call(meter(tx, 3100, "2026-11-23T10:30:00Z"))
            stop = call.StopTransaction(meter_stop=3500, timestamp="2026-11-23T10:35:00Z", transaction_id=tx,
                                        reason="EVDisconnected")
            await cp.call(stop)
            await cp.call(stop)  # and the stop, too
            # A new session after the restart gets a new id.
            tx2 = (await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=3500,
                                                       timestamp="2026-11-23T11:00:00Z"))).transaction_id
            assert tx2 > tx

    db = sqlite3.connect(tmp_path / "journal.sqlite")
    rows = db.execute("SELECT id, state, meter_start, meter_stop FROM transactions ORDER BY id").fetchall()
    assert rows == [(tx, "completed", 100, 3500), (tx2, "active", 3500, None)]
    energy = db.execute("SELECT value FROM meter_samples WHERE transaction_id = ? AND measurand = "
                        "'Energy.Active.Import.Register' ORDER BY timestamp", (tx,)).fetchall()
    assert energy == [(1100,), (2100,), (3100,)]
    assert db.execute("SELECT count(*) FROM unmatched_stops").fetchone() == (0,)
