"""A simulated station of either OCPP version with the same high-level actions, so an end-to-end test body reads
the same for both (issue 19: authorization, charge records and sync run parametrised over 1.6 and 2.0.1).

    @pytest.mark.parametrize("version", VERSIONS)
    async def test_...(make_edge, version):
        async with make_edge(chargers=CHARGERS) as edge, simulated_station(version, edge) as station:
            await station.plug_in(1)
            assert await station.start(1, "TAG-OK") ...

1.6 is simulator.charge_point.SimulatedChargePoint as "CP-1" (its password, 2 connectors); 2.0.1 is
simulator.v201.SimulatedStation as "CS-201" (2 EVSEs, one connector each). A site that serves either
configures both: CHARGERS. What differs between the versions stays here (how a driver starts and stops,
how a meter reading goes out, how a token is keyed in the station's list), never in a test body.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, AsyncIterator

from simulator import electrics
from tests.edge.conftest import PASSWORD, wait_for
from tests.edge.v201.conftest import SITE_CHARGERS

VERSIONS = ("1.6", "2.0.1")
STATION_IDS = {"1.6": "CP-1", "2.0.1": "CS-201"}
# The chargers of a site that runs either: the 1.6 test site's two chargers and the 2.0.1 station.
CHARGERS = SITE_CHARGERS
# The 2.0.1 station alone, for a site whose fixture takes only `extra` (its chargers are the 1.6 test site's).
V201_CHARGER = """
[[chargers]]
id = "CS-201"
connectors = 2
"""


@dataclass
class Station:
    """A running simulated station of `version`, seen through what a driver and a test do with it."""

    version: str
    sim: Any

    @property
    def id(self) -> str:
        return self.sim.id

    # -- what a driver does --------------------------------------------------------------------------

    async def plug_in(self, connector: int = 1, **car: Any) -> None:
        await self.sim.plug_in(connector, **car)

    async def unplug(self, connector: int = 1) -> None:
        await self.sim.unplug(connector)

    async def authorize(self, tag: str) -> str:
        """The station asks the central system about a card (Authorize): its idTagInfo/idTokenInfo status."""
        if self.version == "1.6":
            return await self.sim.authorize(tag)
        return await self.sim.authorize({"id_token": tag, "type": "ISO14443"})

    async def start(self, connector: int, tag: str) -> bool:
        """A session starts for `tag` on `connector` with a car plugged in. 1.6: a StartTransaction (the station
        decided); 2.0.1: the card presented, Authorize, TransactionEvent Started. While online the start is
        delivered before this returns; -> whether the central system answered it (False: started offline)."""
        if self.version == "1.6":
            return await self.sim.start_transaction(connector, tag) > 0   # negative: provisional, offline
        before = self.sim._event_counts.get("transaction_started", 0)
        assert await self.sim.present_token(connector, tag) == "Accepted"
        await self.sim.wait_event("transaction_started", count=before + 1)
        return await self._delivered()

    async def _delivered(self) -> bool:
        """2.0.1: while online, until the station's queue is answered (1.6's calls await their own delivery)."""
        if self.sim.link is None:
            return False
        await self.sim.flush()
        return True

    async def stop(self, connector: int = 1, reason: str = "Local", tag: str | None = None) -> None:
        """The driver ends the session at the station (with `tag`: their card, 1.6's idTag of the stop); its stop
        (1.6 StopTransaction, 2.0.1 Ended) is delivered."""
        if self.version == "1.6":
            await self.sim.stop_transaction(connector, reason, id_tag=tag)
        else:
            await self.sim.stop(connector, reason)
            await self._delivered()

    async def meter(self) -> None:
        """A meter reading of every running session now (1.6 MeterValues, 2.0.1 TransactionEvent Updated),
        delivered: with a manual clock, the energy up to the clock's time."""
        if self.version == "1.6":
            electrics.queue_meter_values(self.sim)
        else:
            for evse in self.sim.evses.values():
                if evse.tx is not None:
                    self.sim.transaction_event(evse, "Updated", "MeterValuePeriodic")
        await self.sim.flush()

    async def fault(self, connector: int, info: str = "") -> None:
        """The connector reports a fault (1.6 StatusNotification Faulted GroundFailure, 2.0.1 Faulted)."""
        if self.version == "1.6":
            await self.sim.report_fault(connector, "GroundFailure", info)
        else:
            await self.sim.report_fault(connector, True, info)

    def running(self, connector: int = 1) -> bool:
        if self.version == "1.6":
            return self.sim.connector(connector).transaction_id is not None
        return self.sim.evses[connector].tx is not None

    async def wait_running(self, connector: int = 1, timeout: float = 10.0) -> None:
        """Until a session runs on `connector` (started by the station or remotely) and its start is delivered."""
        await wait_for(lambda: self.running(connector), timeout, what=f"a session on {self.id} {connector}")
        await self.sim.flush()

    def operative(self, connector: int) -> bool:
        return self.sim.connectors[connector].operative

    def requests(self, action: str) -> list[dict]:
        """The central system's requests of `action` the station answered, oldest first."""
        return [data for name, data in self.sim.events if name == "request" and data.get("action") == action]

    # -- the station's authorization data ------------------------------------------------------------

    def _key(self, tag: str) -> str:
        return tag if self.version == "1.6" else f"ISO14443:{tag}"

    @property
    def local_list(self) -> dict[str, str]:
        """The station's local list: id tag -> status."""
        return {key.split(":", 1)[-1]: status for key, status in self.sim.local_auth.entries.items()}

    @property
    def local_list_version(self) -> int:
        return self.sim.local_auth.version

    @property
    def cache(self) -> dict[str, str]:
        return {key.split(":", 1)[-1]: status for key, status in self.sim.local_auth.cache.items()}

    def remember(self, tag: str, status: str = "Accepted") -> None:
        """The station's authorization cache holds `tag` (as if authorized earlier)."""
        self.sim.local_auth.remember(self._key(tag), status)

    def setting(self, name: str) -> str | None:
        """A station setting by its 1.6 key (LocalAuthorizeOffline, AuthorizationCacheEnabled...)."""
        if self.version == "1.6":
            return self.sim.config.value(name)
        component, variable = {"LocalAuthorizeOffline": ("AuthCtrlr", "LocalAuthorizeOffline"),
                               "AuthorizationCacheEnabled": ("AuthCacheCtrlr", "Enabled"),
                               "LocalAuthListEnabled": ("LocalAuthListCtrlr", "Enabled")}[name]
        return self.sim.device.get(component, variable)

    async def requests_until(self, predicate: Any, timeout: float = 10.0) -> None:
        """Wait on the station's own events (each central-system request it answers) until `predicate()`."""
        seen = sum(1 for name, _ in self.sim.events if name == "request")
        while not predicate():
            seen += 1
            await self.sim.wait_event("request", count=seen, timeout=timeout)


def make_sim(version: str, station_id: str, url: str, *, connectors: int = 2, manual_clock: Any = None,
             **kwargs: Any) -> Any:
    """A simulated station of `version` (not running yet) with `connectors` EVSEs. `manual_clock`: its clocks on
    the edge's edge.clock.ManualClock and no periodic readings (a test sends them with Station.meter())."""
    kwargs.setdefault("ramp_seconds", 0.2)      # the same physics for both: the same energy
    if manual_clock is not None:
        kwargs.update(clock=manual_clock.monotonic, wall_clock=manual_clock.now)
    if version == "1.6":
        from simulator.charge_point import SimulatedChargePoint
        if manual_clock is not None:
            kwargs.setdefault("meter_interval", 0)
        kwargs.setdefault("reconnect_delay", 0.1)
        return SimulatedChargePoint(station_id, url, connectors=connectors, **kwargs)
    from simulator.v201 import SimulatedStation
    if manual_clock is not None:
        kwargs.setdefault("tx_updated_interval", 0)
    kwargs.setdefault("reconnect_delay", 0.05)
    return SimulatedStation(station_id, url, evses=connectors, **kwargs)


@contextlib.asynccontextmanager
async def simulated_station(version: str, edge: Any, *, manual_clock: Any = None, port: int | None = None,
                            **kwargs: Any) -> AsyncIterator[Station]:
    """The simulated station of `version` as STATION_IDS names it (2 connectors; 1.6 with its password), running,
    accepted and online; `manual_clock` as make_sim's."""
    if version == "1.6":
        kwargs.setdefault("password", PASSWORD)
    sim = make_sim(version, STATION_IDS[version], f"ws://127.0.0.1:{port or edge.ocpp.bound_port}/ocpp",
                   manual_clock=manual_clock, **kwargs)
    task = asyncio.create_task(sim.run())
    try:
        await sim.wait_accepted()
        await sim.wait_online()
        yield Station(version, sim)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
