"""SecurityEventNotification (OCPP 1.6 security whitepaper, use case A04): what chargers report about their
own security, stored per charger, shown in `edgectl` and the API, the critical ones alerted to the cloud.

Critical, per the whitepaper's list: a firmware update, the system time set, a start-up, a reset or reboot,
the security log cleared, memory exhausted, tamper detection. Everything else (failed authentications,
invalid messages or certificates, a TLS version or cipher suite refused) is kept and shown, not alerted:
a charger on a bad link can report those by the hundred.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from edge.events import Event
from edge.journal import Store

if TYPE_CHECKING:
    from edge.ocpp.site import Site

log = logging.getLogger(__name__)

CRITICAL = frozenset({"FirmwareUpdated", "SettingSystemTime", "StartupOfTheDevice", "ResetOrReboot",
                      "SecurityLogWasCleared", "MemoryExhaustion", "TamperDetectionActivated"})
KEEP_PER_CHARGER = 1000        # events kept per charger: one on a bad link reports invalid messages without end
EVENT = "security.critical"


def is_critical(event_type: str) -> bool:
    return event_type in CRITICAL


async def received(site: "Site", charger_id: str, event_type: str, charger_time: str | None,
                   tech_info: str | None) -> None:
    """Stored before the charger is answered; a critical one goes to the event bus (alerted upward)."""
    at = site.clock.now_iso()
    critical = is_critical(event_type)
    event_id = await site.journal.write(Store.record_security_event, charger_id, event_type, charger_time, tech_info,
                                        critical, at, KEEP_PER_CHARGER)
    log.log(logging.WARNING if critical else logging.INFO, "security event charger=%s type=%s tech_info=%r",
            charger_id, event_type, (tech_info or "")[:100])
    if critical:
        site.bus.publish(Event(EVENT, charger_id, at, {"type": event_type, "charger_time": charger_time,
                                                       "tech_info": tech_info, "id": event_id}))
