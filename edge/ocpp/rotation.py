"""Rotating every charger's credentials at once, with progress (`edgectl security rotate`, docs/security.md).

Two kinds, per charger:
- certificate: a charger that connected with a client certificate (profile 3) is asked for a new CSR
  (ExtendedTriggerMessage SignChargePointCertificate); the step is done when it accepted the
  CertificateSigned the site CA answered its SignCertificate with (security.certificate_signed).
- password: a new AuthorizationKey (edge/ocpp/credentials.py: the old key stays valid until the charger
  logs in with the new one, so nobody is locked out).

One charger at a time (a fleet rotating its TLS identities all at once would reconnect as one storm).
A charger that is offline stays `pending` and is done when it is next ready, while the rotation is open.
Progress is kept in rotation_steps, so `edgectl security rotate --status` reads it after a restart too.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Callable

from edge.journal import Store

if TYPE_CHECKING:
    from edge.ocpp.security_state import Seen
    from edge.ocpp.site import Site

log = logging.getLogger(__name__)

KINDS = ("certificate", "password")
OPEN = ("pending", "sent")


def first_state(kind: str, seen: "Seen | None", has_password: bool) -> tuple[str, str | None]:
    """Where a charger's step starts (pure): skipped with why, or pending."""
    if kind == "certificate" and (seen is None or seen.level < 3):
        return "skipped", "never seen with a client certificate (security profile 3): nothing to rotate"
    if kind == "password" and not has_password:
        return "skipped", "no password set (security profile 0 or 3 without one)"
    return "pending", None


def progress(found: tuple[int | None, list[dict[str, Any]]]) -> dict[str, Any]:
    """A rotation as `edgectl security rotate --status` shows it, from the journal's Store.rotation_steps."""
    rotation_id, steps = found
    if rotation_id is None:
        return {"rotation_id": None, "steps": [], "counts": {}}
    counts: dict[str, int] = {}
    for step in steps:
        counts[step["state"]] = counts.get(step["state"], 0) + 1
    return {"rotation_id": rotation_id, "steps": steps, "counts": counts,
            "finished": not any(s["state"] in OPEN for s in steps)}


# -- the shell ------------------------------------------------------------------------------

class SiteRotation:
    def __init__(self, site: "Site", *, seen: Callable[[], "dict[str, Seen]"], connected: Callable[[str], bool],
                 has_password: Callable[[str], bool], rotate_password: Callable[..., Any],
                 renew: Callable[..., Any]):
        self.site = site
        self._seen, self._connected, self._has_password = seen, connected, has_password
        self._rotate_password, self._renew = rotate_password, renew
        self.current: int | None = None
        self._task: asyncio.Task | None = None
        self._open: dict[tuple[str, str], str] = {}     # (charger, kind) -> state, for the open rotation

    async def start(self, kinds: tuple[str, ...], chargers: list[str] | None, *, actor: str) -> dict[str, Any]:
        if self._task is not None and not self._task.done():
            raise RuntimeError(f"rotation {self.current} is still under way (edgectl security rotate --status)")
        ids = chargers or self.site.directory.ids()
        seen = self._seen()
        steps = [(c, kind, *first_state(kind, seen.get(c), self._has_password(c))) for kind in kinds for c in ids]
        self.current = await self.site.journal.write(Store.start_rotation, steps, self.site.clock.now_iso())
        self._open = {(c, kind): state for c, kind, state, _ in steps if state == "pending"}
        self._task = asyncio.create_task(self._run(self.current, actor))
        return progress(await self.site.journal.read(Store.rotation_steps, self.current))

    async def _set(self, rotation_id: int, charger_id: str, kind: str, state: str, detail: str | None) -> None:
        if state in OPEN:
            self._open[(charger_id, kind)] = state
        else:
            self._open.pop((charger_id, kind), None)
        await self.site.journal.write(Store.rotation_step, rotation_id, charger_id, kind, state, detail,
                                      self.site.clock.now_iso())

    async def _step(self, rotation_id: int, charger_id: str, kind: str, actor: str) -> None:
        reason = f"site-wide rotation {rotation_id}"
        if kind == "password":
            try:
                await self._rotate_password(charger_id, actor=actor, reason=reason)
            except Exception as exc:  # noqa: BLE001 - one charger's failure is its step's, not the rotation's
                await self._set(rotation_id, charger_id, kind, "failed", str(exc)[:200])
                return
            await self._set(rotation_id, charger_id, kind, "done", "new AuthorizationKey set")
            return
        result = await self._renew(charger_id, actor=actor, reason=reason)
        if result.outcome == "ok":
            await self._set(rotation_id, charger_id, kind, "sent", "asked for a CSR (ExtendedTriggerMessage)")
        elif result.outcome in ("not-connected", "timeout"):
            await self._set(rotation_id, charger_id, kind, "pending", f"{result.outcome}; tried again when ready")
        else:
            await self._set(rotation_id, charger_id, kind, "failed", f"{result.outcome}: {result.response}"[:200])

    async def _run(self, rotation_id: int, actor: str) -> None:
        events = self.site.bus.subscribe(maxsize=1000)
        try:
            for (charger_id, kind), state in list(self._open.items()):
                if state == "pending" and self._connected(charger_id):
                    await self._step(rotation_id, charger_id, kind, actor)
            while self._open:
                event = await events.get()
                key = (event.charger_id, "certificate")
                if event.kind == "security.certificate_signed" and key in self._open:
                    answer = event.data.get("answer")
                    await self._set(rotation_id, event.charger_id, "certificate",
                                    "done" if answer == "Accepted" else "failed",
                                    f"CertificateSigned serial {event.data.get('serial')}: {answer}")
                elif event.kind == "charger.ready":
                    for kind in ("certificate", "password"):
                        if self._open.get((event.charger_id, kind)) == "pending":
                            await self._step(rotation_id, event.charger_id, kind, actor)
        finally:
            self.site.bus.unsubscribe(events)
            log.info("rotation %s: %s", rotation_id, "finished" if not self._open else "stopped with steps open")
