"""SecurityEventNotification (OCPP 1.6 security whitepaper, use case A04): what chargers report about their
own security, stored per charger, shown in `edgectl` and the API, the critical ones alerted to the cloud.

Critical, per the whitepaper's list: a firmware update, the system time set, a start-up, a reset or reboot,
the security log cleared, memory exhausted, tamper detection. Everything else (failed authentications,
invalid messages or certificates, a TLS version or cipher suite refused) is kept and shown, not alerted:
a charger on a bad link can report those by the hundred.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from edge.events import Event
from edge.journal import Store

if TYPE_CHECKING:
    from edge.ocpp.server import Site

log = logging.getLogger(__name__)

CRITICAL = frozenset({"FirmwareUpdated", "SettingSystemTime", "StartupOfTheDevice", "ResetOrReboot",
                      "SecurityLogWasCleared", "MemoryExhaustion", "TamperDetectionActivated"})
KEEP_PER_CHARGER = 1000
EVENT = "security.critical"


def is_critical(event_type: str) -> bool:
    return event_type in CRITICAL


def record_event(store: Store, charger_id: str, event_type: str, charger_time: str | None, tech_info: str | None,
                 critical: bool, at: str) -> int:
    row = store.conn.execute(
        "INSERT INTO security_events (charger_id, type, charger_time, tech_info, critical, at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (charger_id, event_type, charger_time, tech_info, int(critical), at)).lastrowid
    # Bounded per charger: a charger on a bad link reports invalid messages without end.
    store.conn.execute(
        """DELETE FROM security_events WHERE charger_id = ? AND id <= (
             SELECT id FROM security_events WHERE charger_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)""",
        (charger_id, charger_id, KEEP_PER_CHARGER))
    return int(row)


def security_events(store: Store, charger_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    where, args = ("WHERE charger_id = ?", (charger_id,)) if charger_id else ("", ())
    rows = store.conn.execute(
        f"SELECT id, charger_id, type, charger_time, tech_info, critical, at FROM security_events {where} "
        "ORDER BY id DESC LIMIT ?", (*args, limit))
    return [{"id": r[0], "charger_id": r[1], "type": r[2], "charger_time": r[3], "tech_info": r[4],
             "critical": bool(r[5]), "at": r[6]} for r in rows]


async def received(site: "Site", charger_id: str, event_type: str, charger_time: str | None,
                   tech_info: str | None) -> None:
    """Stored before the charger is answered; a critical one goes to the event bus (alerted upward)."""
    at = site.clock.now_iso()
    critical = is_critical(event_type)
    event_id = await site.journal.write(record_event, charger_id, event_type, charger_time, tech_info, critical, at)
    log.log(logging.WARNING if critical else logging.INFO, "security event charger=%s type=%s tech_info=%r",
            charger_id, event_type, (tech_info or "")[:100])
    if critical:
        site.bus.publish(Event(EVENT, charger_id, at, {"type": event_type, "charger_time": charger_time,
                                                       "tech_info": tech_info, "id": event_id}))
