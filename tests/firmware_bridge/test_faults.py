"""Serial faults: retried with backoff, Faulted after the threshold, recovered by themselves.

Every fault is made on the real tty path: noise on the null modem, a
firmware that sends wrong checksums or falls silent, the adapter pulled out
(the pty closed and its path gone) and put back, the wallbox's own faults.
"""

from __future__ import annotations

from typing import Callable

from firmware_bridge.bridge import Bridge
from simulator.rapi_firmware import GFCI_FAULT, OVER_TEMPERATURE, running_bridge
from tests.firmware_bridge.conftest import status_is


def garble(times: int | None = None) -> Callable[[bytes], bytes]:
    """Line noise on the next `times` replies (None: on all of them): a bit flipped in "$OK"."""
    left = times

    def noise(data: bytes) -> bytes:
        nonlocal left
        if b"$OK" not in data or left == 0:
            return data
        if left is not None:
            left -= 1
        return data.replace(b"$OK", b"$O\xcb", 1)
    return noise


async def test_a_garbled_reply_is_retried_without_a_fault(rig, bridge_config) -> None:
    async with running_bridge(Bridge(bridge_config())) as bridge:
        await status_is(bridge, "Available")
        driver = bridge.wallbox.driver
        rig.noise = garble(times=1)
        cycles = bridge.wallbox.cycles
        await bridge.controller.wait_for(lambda: bridge.wallbox.cycles > cycles + 2, 5)
        assert driver.bad_frames == 1
        assert bridge.wallbox.failures == 0 and bridge.controller.link_problem is None
        rig.firmware.plug_in()
        await status_is(bridge, "Preparing")


async def test_a_checksum_error_is_retried_without_a_fault(rig, bridge_config) -> None:
    async with running_bridge(Bridge(bridge_config())) as bridge:
        await status_is(bridge, "Available")
        rig.firmware.bad_checksums = 2
        await bridge.controller.wait_for(lambda: rig.firmware.bad_checksums == 0, 5)
        cycles = bridge.wallbox.cycles
        await bridge.controller.wait_for(lambda: bridge.wallbox.cycles > cycles + 2, 5)
        assert bridge.wallbox.driver.bad_frames == 2
        assert bridge.controller.status().status == "Available"


async def test_lasting_noise_faults_and_recovers(rig, bridge_config) -> None:
    async with running_bridge(Bridge(bridge_config())) as bridge:
        await status_is(bridge, "Available")
        rig.noise = garble()
        await status_is(bridge, "Faulted", "InternalError")
        assert (bridge.controller.status().info or "").startswith("garbled reply to $")
        rig.noise = None
        await status_is(bridge, "Available")


async def test_no_answer_faults_after_the_threshold_and_recovers(rig, bridge_config) -> None:
    async with running_bridge(Bridge(bridge_config())) as bridge:
        await status_is(bridge, "Available")
        rig.firmware.silent = True
        await status_is(bridge, "Faulted", "InternalError")
        # Not before the threshold: fault_after = 3 failed cycles in a row.
        assert bridge.wallbox.failures >= 3
        assert bridge.controller.status().info.startswith("no answer to $")
        rig.firmware.silent = False
        await status_is(bridge, "Available")
        await bridge.controller.wait_for(lambda: bridge.wallbox.failures == 0, 5)


async def test_adapter_unplugged_and_replugged_during_a_session(bridged_site, rig) -> None:
    firmware = rig.firmware
    async with bridged_site() as (edge, events, bridge):
        firmware.plug_in()
        await events.status("Preparing")
        await edge.commands.send("WB-1", "RemoteStartTransaction", {"connectorId": 1, "idTag": "TAG-OK"},
                                 actor="test", reason="test")
        await events.status("Charging")

        rig.unplug()
        faulted = await events.status("Faulted", "InternalError")
        assert faulted.data["vendor_error_code"] == "serial"
        # While the wallbox cannot be reached, the board's own settings change
        # (a power cut: the volatile current is lost, it comes back enabled at 16 A).
        firmware.capacity = firmware.eeprom_capacity
        assert firmware.capacity == 16
        rig.replug()
        await events.status("Charging")
        # The bridge puts back what the transaction is allowed.
        await firmware.wait_for(lambda: firmware.capacity == 32)
        assert bridge.controller.transaction is not None  # the session went on through it all

        firmware.unplug()
        stopped = await events.next("transaction.stopped")
        assert stopped.data["reason"] == "EVDisconnected"


async def test_the_wallboxs_own_faults_are_reported_with_their_code(bridged_site, rig) -> None:
    async with bridged_site() as (edge, events, _):
        await events.status("Available")
        rig.firmware.set_fault(GFCI_FAULT)
        event = await events.status("Faulted", "GroundFailure")
        assert event.data["vendor_error_code"] == "06" and event.data["info"] == "GFCI fault"
        rig.firmware.set_fault(OVER_TEMPERATURE)
        await events.status("Faulted", "HighTemperature")
        rig.firmware.set_fault(None)
        await events.status("Available")


async def test_a_wallbox_that_is_missing_at_start_is_faulted_until_it_appears(rig, bridge_config) -> None:
    rig.unplug()
    async with running_bridge(Bridge(bridge_config())) as bridge:
        await status_is(bridge, "Faulted", "InternalError")
        assert "cannot open" in bridge.controller.status().info
        rig.replug()
        await status_is(bridge, "Available")


async def test_the_watchdog_sees_the_wallbox_loop_go_round(rig, bridge_config) -> None:
    async with running_bridge(Bridge(bridge_config())) as bridge:
        rig.firmware.silent = True  # failing, the loop still goes round: healthy
        await status_is(bridge, "Faulted", "InternalError")
        assert bridge.wallbox.healthy()
        bridge.wallbox.turned -= bridge.config.wallbox.retry_max_interval + 61  # as if it had hung
        assert not bridge.wallbox.healthy()
