"""What the cloud sends down: configuration documents and charger commands.

Every message is checked against the contract (`contract.v1.parse`), then its
document is checked whole before anything changes: an invalid one is rejected
with every problem named, and the configuration in force stays. A valid one is
journaled, then switched to in one step, and the version in force per kind is
kept in the journal. A version not above the one in force is ignored (retained
documents come again on every reconnect). Commands run at most once per id:
a redelivered command gets the answer it got the first time.

Formats and the ack rules: docs/sync-protocol.md.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from datetime import timedelta
from typing import Any, Awaitable, Callable

from pydantic import ValidationError

from contract.v1 import (MAX_PAYLOAD_BYTES, MAX_VERSION, MESSAGE_ID, Ack, CertificateDocument, ContractError, Down,
                         parse, parse_topic, short)
from edge.auth.authorizer import Authorizer, ModelRejected
from edge.cdr.service import ChargeRecords
from edge.clock import Clock, iso
from edge.dlm.manager import LoadManager
from edge.journal import Journal, Store
from edge.ocpp.commands import Commands
from edge.uplink.documents import DocumentError, apply_auth_diff, caps_from, command_from, expired, tariffs_from

log = logging.getLogger(__name__)

ACTOR = "cloud"
MAX_ERROR_CHARS = 4000
# Command ids are remembered this long (a broker queues them for days at most).
REMEMBER_COMMANDS_DAYS = 30
_CLOUD_NOTE = re.compile(r"^cloud version (\d+) \(message (.+)\)$")
# Takes a `certificate` push's document: -> the ack's status and error.
CertificateTaker = Callable[[str, CertificateDocument], Awaitable[tuple[str, "str | None"]]]


class Downlink:
    def __init__(self, journal: Journal, clock: Clock, *, site_id: str, authorizer: Authorizer,
                 charge_records: ChargeRecords, load_manager: LoadManager | None, commands: Commands,
                 is_known: Callable[[str], bool], chargers: Callable[[], list[str]], config_hashes: dict[str, str],
                 certificates: CertificateTaker | None = None):
        self._journal = journal
        self._clock = clock
        self.site_id = site_id
        self._authorizer = authorizer
        self._charge_records = charge_records
        self._load_manager = load_manager
        self._commands = commands
        self._is_known = is_known
        self._chargers = chargers
        # Per kind, a fingerprint of the site config's tables the cloud's document replaces:
        # when they are edited, the edit wins until the cloud sends a newer version.
        self._config_hashes = config_hashes
        # Certificates the cloud signed for chargers' CSRs (edge/ocpp/security_messages.py CertificateService.received).
        self._certificates = certificates
        self.applied: dict[str, dict[str, Any]] = {}
        self._in_force: dict[str, bool] = {}
        self.outcomes: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()
        # Answers whose entry in the journal's downlink log could not be written (logged loudly each time).
        self.unrecorded = 0

    # -- at start --------------------------------------------------------------------------------------

    async def load(self) -> None:
        """The versions in force; the cloud's tariffs and caps applied again (the config's, if they
        were edited since)."""
        self.applied = await self._journal.read(Store.downlink_documents)
        latest = await self._journal.read(Store.latest_auth_model)
        match = _CLOUD_NOTE.match(latest["note"] or "") if latest and latest["source"] == "cloud" else None
        if match and int(match[1]) > self.applied.get("auth", {}).get("version", 0):
            # The edge stopped between applying a cloud model and recording its version.
            await self._record("auth", int(match[1]), match[2], "full", latest["document"],
                               f"model:{latest['version']}")
        for kind in ("tariffs", "limits"):
            row = self.applied.get(kind)
            if row is None:
                continue
            if row["config_hash"] != self._config_hashes[kind]:
                log.warning("uplink: the site config's %s changed after cloud version %d was applied; the config's "
                            "are in force until the cloud sends a newer version", kind, row["version"])
                continue
            try:
                self._switch(kind, row["document"])
            except DocumentError as exc:
                log.error("uplink: cloud %s version %d no longer fits this site (%s); the config's are in force",
                          kind, row["version"], exc)
                continue
            log.info("uplink: cloud %s version %d in force", kind, row["version"])

    def in_force(self, kind: str) -> bool:
        row = self.applied.get(kind)
        if row is None:
            return False
        if kind == "auth":
            return row["config_hash"] == f"model:{self._authorizer.model.version}"
        return self._in_force.get(kind, False)

    def versions(self) -> dict[str, dict[str, Any]]:
        return {kind: {"version": row["version"], "message_id": row["message_id"], "mode": row["mode"],
                       "applied_at": row["applied_at"], "in_force": self.in_force(kind)}
                for kind, row in self.applied.items()}

    # -- receiving -------------------------------------------------------------------------------------

    async def check(self, topic: str, payload: bytes) -> Down | Ack | None:
        """A received message as a Down, or the Ack that rejects it (None when not even the
        topic can be answered: it is not a downlink topic of this site, or it is empty: the cloud
        cleared a retained document, which changes nothing here). Never raises: whatever is wrong
        with a message is answered once, and the link stays up."""
        if not payload:
            return None
        try:
            down = parse(topic, payload)
            if not isinstance(down, Down):
                raise ContractError(f"{topic}: not a downlink topic", "topic")
            if down.site != self.site_id:
                raise ContractError(f"{topic}: for site {down.site!r}, this is {self.site_id!r}", "site_mismatch")
            return down
        except ContractError as exc:
            reason, error = exc.reason, str(exc)
            log.warning("uplink: downlink message rejected (%s): %s", reason, error)
        except Exception as exc:  # noqa: BLE001 - a bug in checking must not make the message come back forever
            log.exception("uplink: checking a downlink message on %s failed", topic[:200])
            reason, error = "error", f"the edge could not check it ({type(exc).__name__}: {exc})"
        self.rejections[reason] += 1
        try:
            site, part, kind = parse_topic(topic)
        except ContractError:
            return None
        if part != "down" or site != self.site_id or kind is None:
            return None
        message_id, version = _peek(payload)
        return await self._answer(kind, message_id, version, "rejected", error)

    async def apply(self, down: Down) -> Ack:
        """A configuration document (auth, tariffs, limits), or a charger's certificate."""
        if down.kind == "certificate":
            return await self.take_certificate(down)
        kind, version = down.kind, down.version
        if version is None:
            return await self._answer(kind, down.id, None, "rejected",
                                      "version is required for a configuration document")
        current = self.applied.get(kind)
        if current is not None and version == current["version"] and self.in_force(kind):
            # Sent again (the cloud sends until it has our ack, the broker keeps it retained): in force already.
            return await self._answer(kind, down.id, version, "applied")
        if current is not None and version <= current["version"]:
            note = None if self.in_force(kind) else (
                f"version {current['version']} was superseded by a local change (site config or local API); "
                "send a newer version to replace it")
            return await self._answer(kind, down.id, version, "ignored", note)
        try:
            if kind == "auth":
                await self._apply_auth(down)
            else:
                if down.mode != "full":
                    raise DocumentError([f"mode: {kind} documents are full documents only (diff is for auth)"])
                self._switch(kind, down.document, commit=False)        # checks it; changes nothing yet
                await self._record(kind, version, down.id, "full", down.document, self._config_hashes[kind])
                self._switch(kind, down.document)
        except DocumentError as exc:
            return await self._answer(kind, down.id, version, "rejected", "; ".join(exc.problems))
        log.info("uplink: cloud %s version %d applied (%s)", kind, version, down.mode)
        return await self._answer(kind, down.id, version, "applied")

    async def _apply_auth(self, down: Down) -> None:
        document = down.document
        current = self.applied.get("auth")
        if down.mode == "diff":
            if current is None or not self.in_force("auth"):
                raise DocumentError(["mode diff: no cloud version is in force to apply it to; send the full document"])
            document, base = apply_auth_diff(self._authorizer.document, down.document)
            if base != current["version"]:
                raise DocumentError([f"base_version: {base} is not the version in force ({current['version']}); "
                                     "send the full document or a diff against the version in force"])
        try:
            model = await self._authorizer.replace(document, source=ACTOR, actor=ACTOR,
                                                   note=f"cloud version {down.version} (message {down.id})")
        except ModelRejected as exc:
            raise DocumentError(exc.problems) from None
        await self._record("auth", down.version, down.id, down.mode, document, f"model:{model.version}")

    def _switch(self, kind: str, document: dict[str, Any], commit: bool = True) -> None:
        """Build what `document` means for this site (raises DocumentError), and put it in force."""
        if kind == "tariffs":
            book = tariffs_from(document, self._authorizer.model.user_groups.values(), self._chargers())
            if commit:
                self._charge_records.book = book
        elif kind == "limits":
            manager = self._load_manager
            caps = caps_from(document, manager.topology if manager else None)
            if commit and manager is not None:
                manager.set_caps(caps)
        if commit:
            self._in_force[kind] = True

    async def _record(self, kind: str, version: int, message_id: str, mode: str, document: dict[str, Any],
                      fingerprint: str) -> None:
        at = self._clock.now_iso()
        await self._journal.write(Store.record_downlink_document, kind, version, message_id, mode, document,
                                  fingerprint, at)
        self.applied[kind] = {"kind": kind, "version": version, "message_id": message_id, "mode": mode,
                              "document": document, "config_hash": fingerprint, "applied_at": at}

    # -- certificates ------------------------------------------------------------------------------------

    async def take_certificate(self, down: Down) -> Ack:
        """A certificate the cloud signed for a charger's CSR (or its refusal): kept for the charger, acked
        `done`; `ignored` when that CSR is no longer in play, `rejected` when it is not one of ours or the
        certificate is not for it (docs/security.md, "Signed in the cloud")."""
        stale = expired(down.expires_at, self._clock.now())
        if stale:
            log.warning("uplink: certificate %s rejected: %s", down.id, stale)
            return await self._answer("certificate", down.id, down.version, "rejected", stale)
        try:
            document = CertificateDocument.model_validate(down.document)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "document"
            return await self._answer("certificate", down.id, down.version, "rejected",
                                      f"{where}: {first['msg'].removeprefix('Value error, ')}")
        if self._certificates is None:
            return await self._answer("certificate", down.id, down.version, "rejected",
                                      "this edge takes no certificates from the cloud")
        status, error = await self._certificates(down.id, document)
        return await self._answer("certificate", down.id, down.version, status, error)

    # -- commands ----------------------------------------------------------------------------------------

    async def run_command(self, down: Down) -> Ack:
        """Once per command id; a redelivered one gets its first answer again."""
        stale = expired(down.expires_at, self._clock.now())
        if stale:
            return await self._answer("command", down.id, down.version, "rejected", stale)
        try:
            command = command_from(down.document, self._is_known)
        except DocumentError as exc:
            return await self._answer("command", down.id, down.version, "rejected", "; ".join(exc.problems))
        if not await self._journal.write(Store.begin_downlink_command, down.id, self._clock.now_iso(),
                                         command.charger_id, command.action,
                                         iso(self._clock.now() - timedelta(days=REMEMBER_COMMANDS_DAYS))):
            row = await self._journal.read(Store.downlink_command, down.id)
            if row and row["ack"]:
                return Ack.model_validate(json.loads(row["ack"]))
            return await self._answer("command", down.id, down.version, "failed",
                                      "the edge restarted while this command ran; its outcome is unknown "
                                      "(see the charger's actions log)")
        result = await self._commands.send(command.charger_id, command.action, command.params, actor=ACTOR,
                                           reason=f"cloud command {down.id}" + (f": {command.reason}"
                                                                                 if command.reason else ""))
        outcome = {"outcome": result.outcome, "response": result.response, "action_id": result.action_id}
        ok = result.outcome == "ok"
        ack = await self._answer("command", down.id, down.version, "done" if ok else "failed",
                                 None if ok else f"{result.outcome}: {result.response}", result=outcome)
        await self._journal.write(Store.finish_downlink_command, down.id, ack.model_dump(mode="json"))
        return ack

    async def failed(self, down: Down, exc: BaseException) -> Ack:
        """The answer to a message whose handling broke (a bug): it is dropped, not retried forever."""
        return await self._answer(down.kind, down.id, down.version, "rejected" if down.kind != "command" else "failed",
                                  f"the edge could not handle it ({type(exc).__name__}: {exc}); see its log")

    # -- answers -----------------------------------------------------------------------------------------

    async def _answer(self, kind: str, message_id: str, version: int | None, status: str, error: str | None = None,
                      result: dict[str, Any] | None = None) -> Ack:
        """The ack for a message, and its line in the journal's downlink log. Cannot fail on what the
        message carried: an unusable id or version is named in the error, not copied; a log line the
        journal refuses is reported, and the ack still goes out."""
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= MAX_VERSION:
            if version is not None:
                error = f"version {short(version)} is out of range (1..{MAX_VERSION})" + (f"; {error}" if error else "")
            version = None
        if not isinstance(message_id, str) or len(message_id) > 64:
            error = f"id {short(message_id)} is not a message id" + (f"; {error}" if error else "")
            message_id = ""
        current = self.applied.get(kind)
        if error is not None and len(error) > MAX_ERROR_CHARS:   # the ack must stay a small message
            error = error[:MAX_ERROR_CHARS] + f"... ({len(error)} characters in all)"
        ack = Ack(site=self.site_id, kind=kind, id=message_id, version=version, status=status,
                  applied_version=current["version"] if current and kind != "command" else None,
                  error=error, result=result)
        self.outcomes[status] += 1
        try:
            await self._journal.write(Store.record_downlink, self._clock.now_iso(), kind, message_id, version,
                                      status, error)
        except Exception:  # noqa: BLE001 - the log line is lost, never the answer: reported loudly and counted
            self.unrecorded += 1
            log.exception("uplink: the downlink log entry for %s %r (%s) could not be written; answering anyway",
                          kind, message_id, status)
        if status in ("rejected", "failed"):
            log.warning("uplink: %s %s (version %s) %s: %s", kind, message_id, version, status, error)
        return ack


def _peek(payload: bytes) -> tuple[str, int | None]:
    """The id and version of a message that failed the contract, to name it in the answer."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return "", None
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return "", None
    if not isinstance(data, dict):
        return "", None
    message_id = data.get("id") if isinstance(data.get("id"), str) else ""
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        version = None          # out of range: the contract's error names it; it is not copied anywhere
    # An id the contract refused is not echoed either (it may be what was wrong); the error names it.
    return (message_id if re.match(MESSAGE_ID, message_id) else ""), version
