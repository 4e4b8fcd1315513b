"""Commissioning in the local API (docs/commissioning.md, docs/web-page.md).

- POST /api/v1/commission {"detect_rotation": false, "reason": "..."}: runs the checks and answers with the
  report when done (edgectl commission).
- POST /api/v1/commission/run {"detect_rotation": false, "consent": false, "reason": "..."}: starts a run in
  the background and answers 202 at once (the web page); the rotation detection needs "consent": true, as it
  steps the cars' currents. GET /api/v1/commission/run: the latest run as it goes (stage, progress, the
  checks and rotation findings so far, the report when done), for the page to poll.

One run at a time: the rotation detection steps chargers, and two runs stepping at once would read each
other's cars on the meter. Each run is one row in the actions log (charger "*", the site; action
"Commission"), with who asked and why; the commands it sends to chargers are there too (actor edge:commission).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from edge.commission.runner import Commissioning
from edge.journal import Store
from edge.web.common import actor_of, dumps, error_response, json_object, json_response
from edge.web.site import SiteView

log = logging.getLogger(__name__)

SITE = "*"          # the actions log's charger column for what concerns the whole site
ACTION = "Commission"
MAX_REASON = 200


@dataclass
class Run:
    id: int
    detect_rotation: bool
    actor: str
    reason: str
    started_at: str
    runner: Commissioning
    finished_at: str | None = None
    report: dict[str, Any] | None = None
    error: str | None = None
    task: asyncio.Task | None = field(default=None, repr=False)

    def view(self) -> dict[str, Any]:
        state = "error" if self.error else "done" if self.report is not None else "running"
        return {"id": self.id, "state": state, "detect_rotation": self.detect_rotation, "actor": self.actor,
                "reason": self.reason, "started_at": self.started_at, "finished_at": self.finished_at,
                "stage": self.runner.stage, "progress": self.runner.progress,
                "checks": [c.as_dict() for c in self.runner.checks], "rotation": self.runner.rotation,
                "report": self.report, "error": self.error}


def parse_request(body: dict[str, Any], *, consent_needed: bool) -> tuple[bool, str]:
    """(detect_rotation, reason) from a request's body, or a ValueError that says what is wrong with it.
    edgectl's --detect-rotation is its own consent; the page's run asks for "consent": true besides."""
    flags = {}
    for name in ("detect_rotation", "consent"):
        value = body.get(name, False)
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, not {value!r}")
        flags[name] = value
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise ValueError(f"reason must be a string, not {reason!r}")
    if len(reason.strip()) > MAX_REASON:
        raise ValueError(f"reason is {len(reason.strip())} characters long: at most {MAX_REASON}")
    if consent_needed and flags["detect_rotation"] and not flags["consent"]:
        raise ValueError('the rotation detection steps the current of every car that is charging: send '
                         '"consent": true to go ahead')
    return flags["detect_rotation"], reason.strip()


class CommissionRoutes:
    def __init__(self, site: SiteView):
        self.site = site
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self._latest: Run | None = None

    def routes(self) -> list[web.AbstractRouteDef]:
        return [web.post("/api/v1/commission", self.commission),
                web.post("/api/v1/commission/run", self.start),
                web.get("/api/v1/commission/run", self.latest)]

    async def close(self) -> None:
        """At the server's stop: a run in the background ends with it (its step profiles end by themselves)."""
        if self._latest is not None and self._latest.task is not None and not self._latest.task.done():
            self._latest.task.cancel()
            await asyncio.gather(self._latest.task, return_exceptions=True)

    async def _record(self, run: Run) -> None:
        report = run.report or {}
        failing = [c["name"] for c in report.get("checks", []) if c["status"] == "fail"]
        response = {"run": run.id, "error": run.error} if run.error else {"run": run.id, "ok": report.get("ok"),
                                                                           "failed": failing}
        await self.site.journal.write(Store.record_action, self.site.clock.now_iso(), SITE, run.actor, ACTION,
                                      {"detect_rotation": run.detect_rotation}, run.reason,
                                      "error" if run.error else "ok", response)

    async def _run(self, run: Run) -> None:
        try:
            run.report = await run.runner.run(detect_rotation=run.detect_rotation)
        except Exception as exc:   # the page must see that it ended, and why
            log.exception("commissioning run %s failed", run.id)
            run.error = f"{type(exc).__name__}: {exc}"
        finally:
            run.finished_at = self.site.clock.now_iso()
        await self._record(run)

    async def _new_run(self, request: web.Request, *, consent_needed: bool) -> Run:
        """A run of what the request asks for; a 400 saying what is wrong, or a 409 while another runs."""
        try:
            detect, reason = parse_request(await json_object(request, empty_ok=True), consent_needed=consent_needed)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=dumps({"error": str(exc)}), content_type="application/json") from None
        if self._lock.locked():
            raise web.HTTPConflict(text=dumps({"error": "a commissioning run is in progress",
                                               "run": self._latest.view() if self._latest else None}),
                                   content_type="application/json")
        return Run(next(self._ids), detect, actor_of(request), reason or "commissioning",
                   self.site.clock.now_iso(), Commissioning(self.site, why=reason))

    async def commission(self, request: web.Request) -> web.Response:
        run = await self._new_run(request, consent_needed=False)
        async with self._lock:
            self._latest = run
            await self._run(run)
        if run.error:
            return error_response(500, f"the commissioning run failed: {run.error}")
        return json_response(run.report)

    async def start(self, request: web.Request) -> web.Response:
        run = await self._new_run(request, consent_needed=True)
        await self._lock.acquire()      # free (checked just above, nothing awaited since): held until the run ends
        self._latest = run

        async def background() -> None:
            try:
                await self._run(run)
            finally:
                self._lock.release()
        run.task = asyncio.create_task(background(), name=f"commissioning-run-{run.id}")
        return json_response(run.view(), status=202)

    async def latest(self, request: web.Request) -> web.Response:
        return json_response({"run": self._latest.view() if self._latest else None,
                              "step_seconds": round(2 * Commissioning(self.site).settle_s, 1)})
