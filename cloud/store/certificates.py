"""Chargers' CSRs the sites sent up, and what the cloud made of them (table csrs, migration 7).

A `certificate.csr` message stored for the first time becomes a `pending` row in the same transaction
(cloud/store/ingest.py calls `note`), so a CSR is never stored without being queued to be signed, nor
queued twice. cloud/certificates.py settles each pending row: `issued` (the certificate, and the push
that carries it down) or `refused` (why), in one transaction with the push, and only if still pending
(two cloud instances may look at once: one settles it). The same CSR sent again (the site gave up on
an answer that did not come) is `resend`: the same certificate or refusal goes down again in a new push.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from cloud.db import Connection
from cloud.db.connection import Row
from cloud.store import pushes
from contract.v1 import ANSWER_TYPE, CSR_TYPE, AnswerBody, CsrBody, Message

log = logging.getLogger(__name__)

TO_SETTLE = ("pending", "resend")
STATUSES = ("pending", "resend", "issued", "refused")
_LIST = ("c.charger_id, c.csr_sha256, c.requested_at, c.received_at, c.status, c.error, c.serial, c.not_after, "
         "c.push_id, c.settled_at, c.answer, c.answered_at, p.status AS push_status, p.acked_at AS delivered_at")


def note(conn: Connection, site: str, messages: list[tuple[Message, str]], now: str) -> int:
    """The CSRs and charger answers among status messages stored just now ((message, canonical time));
    -> CSRs queued. A body that is not a CSR is logged and stays a plain status message."""
    queued = 0
    for message, at in messages:
        if message.type not in (CSR_TYPE, ANSWER_TYPE):
            continue
        try:
            if message.type == CSR_TYPE:
                csr = CsrBody.model_validate(message.body)
                queued += conn.run(
                    "INSERT INTO csrs (site, csr_sha256, charger_id, csr, message_id, requested_at, received_at, "
                    "status) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending') ON CONFLICT (site, csr_sha256) DO UPDATE SET "
                    "message_id = excluded.message_id, requested_at = excluded.requested_at, "
                    "status = CASE WHEN csrs.status IN ('issued', 'refused') THEN 'resend' ELSE csrs.status END",
                    (site, csr.csr_sha256, csr.charger_id, csr.csr, message.id, at, now))
            else:
                answer = AnswerBody.model_validate(message.body)
                conn.run("UPDATE csrs SET answer = ?, answered_at = ? WHERE site = ? AND csr_sha256 = ?",
                         (answer.answer, at, site, answer.csr_sha256))
        except ValidationError as exc:
            log.warning("site %s: %s message %s is not usable (%s); kept as a status message only", site,
                        message.type, message.id, str(exc).splitlines()[0:3])
    return queued


def to_settle(conn: Connection, limit: int = 50) -> list[Row]:
    """CSRs to sign (or refuse), oldest first, each with whether its charger is one the site reported."""
    return conn.all(
        "SELECT c.site, c.csr_sha256, c.charger_id, c.csr, c.status, c.error, c.certificate, c.serial, c.not_after, "
        "(SELECT count(*) FROM chargers h WHERE h.site = c.site AND h.charger_id = c.charger_id) AS known "
        "FROM csrs c WHERE c.status IN (?, ?) ORDER BY c.received_at LIMIT ?", (*TO_SETTLE, limit))


def settle(conn: Connection, site: str, csr_sha256: str, *, error: str | None, certificate: str | None,
           serial: str | None, not_after: str | None, push: dict[str, Any], now: str) -> Row | None:
    """Issued (certificate) or refused (error), with the push that tells the site: -> the push, or None
    when the CSR was settled meanwhile (by another instance)."""
    claimed = conn.run(
        "UPDATE csrs SET status = ?, error = ?, certificate = ?, serial = ?, not_after = ?, push_id = ?, "
        "settled_at = ? WHERE site = ? AND csr_sha256 = ? AND status IN (?, ?)",
        ("refused" if error is not None else "issued", error, certificate, serial, not_after, push["id"], now,
         site, csr_sha256, *TO_SETTLE))
    if not claimed:
        return None
    return pushes.create(conn, site=site, now=now, **push)


def listing(conn: Connection, site: str, *, status: str | None, charger: str | None, limit: int) -> list[Row]:
    """A site's CSRs, newest first, with how far the push carrying the answer got."""
    where, args = ["c.site = ?"], [site]
    if status:
        where.append("c.status = ?")
        args.append(status)
    if charger:
        where.append("c.charger_id = ?")
        args.append(charger)
    return conn.all(f"SELECT {_LIST} FROM csrs c LEFT JOIN pushes p ON p.id = c.push_id "
                    f"WHERE {' AND '.join(where)} ORDER BY c.received_at DESC, c.csr_sha256 LIMIT ?", (*args, limit))
