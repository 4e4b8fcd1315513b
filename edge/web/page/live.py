"""What the page shows live, once a second: the load manager's view (phases against limits, failsafe,
meters, each connector's limit and why), the chargers' connections and the running sessions with kW and kWh.
One snapshot a second is shared by every open page (LiveView caches it)."""

from __future__ import annotations

import time
from typing import Any

from edge.journal import Store
from edge.web.site import SiteView

POWER, ENERGY = "Power.Active.Import", "Energy.Active.Import.Register"


def limit_reason(connector: dict[str, Any], circuit_names: dict[str, str] | None = None) -> str:
    """Why a connector's limit is what it is, in an installer's words ("limited by L2 of grid")."""
    binding = connector.get("binding")
    reason = connector.get("reason") or ""
    if binding:
        circuit = (circuit_names or {}).get(binding["circuit"], binding["circuit"])
        text = f"limited by {binding['phase']} of {circuit}"
        return f"{text} ({reason})" if reason and binding["phase"] not in reason else text
    return reason


def _unit_scale(unit: str | None) -> float:
    return 1000.0 if (unit or "").lower().startswith("k") else 1.0


def session_meter(samples: list[dict[str, Any]], transaction_id: int, meter_start: int | None) -> dict[str, Any]:
    """The newest power (kW) and energy so far (kWh) of a transaction, from its charger's samples (newest first)."""
    kw = kwh = None
    for sample in samples:
        if sample.get("transaction_id") != transaction_id or sample.get("phase"):
            continue
        try:
            value = float(sample["value"]) * _unit_scale(sample.get("unit"))
        except (TypeError, ValueError):
            continue
        if kw is None and sample["measurand"] == POWER:
            kw = value / 1000.0
        elif kwh is None and sample["measurand"] == ENERGY and meter_start is not None:
            kwh = max(0.0, (value - meter_start) / 1000.0)
    return {"kw": None if kw is None else round(kw, 2), "kwh": None if kwh is None else round(kwh, 3)}


class LiveView:
    def __init__(self, site: SiteView, every: float = 1.0):
        self.site, self.every = site, every
        self._cached: tuple[float, dict[str, Any]] | None = None

    async def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] >= self.every * 0.9:
            self._cached = (now, await self._build())
        return self._cached[1]

    async def _build(self) -> dict[str, Any]:
        site = self.site
        manager = site.load_manager
        dlm = manager.status() if manager is not None else None
        if dlm is not None:
            for connector in dlm["connectors"]:
                connector["why"] = limit_reason(connector)
        sessions = []
        active = await site.journal.read(Store.transactions, state="active", limit=200)
        samples_of: dict[str, list[dict[str, Any]]] = {}
        for tx in active:
            if tx["charger_id"] not in samples_of:
                samples_of[tx["charger_id"]] = await site.journal.read(Store.samples, charger_id=tx["charger_id"],
                                                                       limit=60)
            sessions.append({"id": tx["id"], "charger_id": tx["charger_id"], "connector_id": tx["connector_id"],
                             "id_tag": tx["id_tag"], "started": tx["start_time"],
                             **session_meter(samples_of[tx["charger_id"]], tx["id"], tx.get("meter_start"))})
        # Each connector's status rides along so the page shows a change within a second, not at its
        # next 10 s list refresh.
        status_of: dict[str, dict[str, str]] = {}
        for row in await site.journal.read(Store.connectors):
            status_of.setdefault(row["charger_id"], {})[str(row["connector_id"])] = row["status"]
        chargers = [{"id": cid, "connected": cid in site.ocpp.sessions, "connection": site.presence.status(cid),
                     "statuses": status_of.get(cid, {})}
                    for cid in site.directory.ids()]
        return {"at": site.clock.now_iso(), "site": site.config.site.id, "name": site.config.site.name,
                "healthy": site.healthy(), "failed_parts": site.supervisor.report(),
                "config_ok": site.config_status()["ok"],
                "dlm": dlm, "chargers": chargers, "sessions": sessions}

    async def with_alerts(self) -> dict[str, Any]:
        snapshot = await self.snapshot()
        return {**snapshot, "alerts": alerts(snapshot)}


def alerts(snapshot: dict[str, Any]) -> list[str]:
    """What a person should look at now, in words, from one snapshot (pure)."""
    out: list[str] = []
    if snapshot.get("config_ok") is False:
        out.append("running on the last good config: the site config is invalid (edgectl config status)")
    for part in snapshot.get("failed_parts") or []:
        out.append(f"part {part.get('part')} failed and was started again")
    dlm = snapshot.get("dlm") or {}
    for circuit in dlm.get("circuits", []):
        if circuit.get("failsafe"):
            out.append(f"circuit {circuit['id']} in failsafe: its meter is not answering")
        for phase in circuit.get("phases", []):
            metered = phase.get("metered")
            if metered is not None and metered > circuit["limit"]:
                out.append(f"{phase['phase']} of {circuit['id']} at {metered:.1f} A over its {circuit['limit']:g} A "
                           "limit")
    for connector in dlm.get("connectors", []):
        if connector.get("over_limit"):
            out.append(f"{connector['charger_id']}/{connector['connector_id']} draws more than its limit")
    for charger in snapshot.get("chargers", []):
        if not charger.get("connected"):
            out.append(f"charger {charger['id']} not connected ({charger.get('connection')})")
    return out
