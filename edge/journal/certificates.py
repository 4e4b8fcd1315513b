"""The journal's certificates: those the site CA issued to chargers with each charger's answer
(issued_certificates, migration 12), and CSRs sent to the cloud to sign (csr_forwards, migration 16),
from the charger's SignCertificate to its answer to CertificateSigned (edge/ocpp/security_messages.py).

A CSR and its outbox message (certificate.csr on the status stream) are written in one transaction, as
the charger's answer and its certificate.answer are: a power cut loses neither or both, and the outbox
sends each exactly once (docs/sync-protocol.md).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from contract.v1 import ANSWER_TYPE, CSR_TYPE
from edge.journal.base import StoreBase, _for_charger, _rows
from edge.journal.outbox import OutboxStore

# A charger's CSRs still in play: waiting for the cloud, or signed and not yet sent to the charger.
OPEN = ("waiting", "signed")
_COLUMNS = ("charger_id, csr_sha256, csr, requested_at, status, certificate, serial, not_after, push_id, answer, "
            "error, updated_at, certificate_type")


class CertificateStore(StoreBase):
    def record_issued_certificate(self, serial: str, charger_id: str, sha256: str, not_after: str, at: str) -> None:
        """A certificate the site CA signed for a charger (its serial new)."""
        self.conn.execute(
            "INSERT INTO issued_certificates (serial, charger_id, sha256, not_after, issued_at) VALUES (?, ?, ?, ?, ?)",
            (serial, charger_id, sha256, not_after, at))

    def certificate_answer(self, serial: str, answer: str) -> None:
        """The charger's answer to the CertificateSigned that carried it."""
        self.conn.execute("UPDATE issued_certificates SET answer = ? WHERE serial = ?", (answer, serial))

    def issued_certificates(self, charger_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first."""
        where, args = _for_charger(charger_id)
        return _rows(self.conn.execute(
            f"SELECT serial, charger_id, sha256, not_after, issued_at, answer FROM issued_certificates {where} "
            "ORDER BY issued_at DESC LIMIT ?", (*args, limit)))

    def forward_csr(self, charger_id: str, csr: str, csr_sha256: str, at: str,
                    certificate_type: str | None = None) -> dict[str, Any] | None:
        """A charger's CSR for the cloud. New: kept as `waiting`, its earlier open CSRs superseded (the
        charger keeps the key of its last CSR only), and put in the outbox; -> None. The same CSR again
        (the charger asked again): -> its row as it is, nothing sent again; unless it had expired or been
        superseded: then it goes up again as new. `certificate_type`: a 2.0.1 CSR's (migration 19)."""
        known = self.csr_forward(charger_id, csr_sha256)
        if known is not None and known["status"] not in ("expired", "superseded"):
            return known
        self.conn.execute("DELETE FROM csr_forwards WHERE charger_id = ? AND csr_sha256 = ?", (charger_id, csr_sha256))
        self.conn.execute(
            f"UPDATE csr_forwards SET status = 'superseded', error = ?, updated_at = ? "
            f"WHERE charger_id = ? AND status IN {OPEN}",
            (f"the charger sent a newer CSR ({csr_sha256[:12]}...)", at, charger_id))
        self.conn.execute(
            "INSERT INTO csr_forwards (charger_id, csr_sha256, csr, requested_at, status, updated_at, "
            "certificate_type) VALUES (?, ?, ?, ?, 'waiting', ?, ?)",
            (charger_id, csr_sha256, csr, at, at, certificate_type))
        body = {"charger_id": charger_id, "csr": csr, "csr_sha256": csr_sha256, "requested_at": at}
        OutboxStore.outbox_add(self, [(uuid.uuid4().hex, "status", CSR_TYPE, at, json.dumps(body))])
        return None

    def csr_forward(self, charger_id: str, csr_sha256: str) -> dict[str, Any] | None:
        rows = _rows(self.conn.execute(f"SELECT {_COLUMNS} FROM csr_forwards WHERE charger_id = ? AND csr_sha256 = ?",
                                       (charger_id, csr_sha256)))
        return rows[0] if rows else None

    def csr_signed(self, charger_id: str, csr_sha256: str, *, chain: str, serial: str, not_after: str,
                   fingerprint: str, push_id: str, at: str) -> None:
        """The cloud's certificate for a waiting CSR: kept to be sent to the charger, and listed with the
        site CA's (issued_certificates), where the charger's answer lands too."""
        self.conn.execute(
            "UPDATE csr_forwards SET status = 'signed', certificate = ?, serial = ?, not_after = ?, push_id = ?, "
            "error = NULL, updated_at = ? WHERE charger_id = ? AND csr_sha256 = ?",
            (chain, serial, not_after, push_id, at, charger_id, csr_sha256))
        self.conn.execute(
            "INSERT INTO issued_certificates (serial, charger_id, sha256, not_after, issued_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (serial) DO NOTHING", (serial, charger_id, fingerprint, not_after, at))

    def csr_closed(self, charger_id: str, csr_sha256: str, status: str, error: str, at: str,
                   push_id: str | None = None) -> None:
        """refused (by the cloud) or expired (no answer in time), with why."""
        self.conn.execute(
            "UPDATE csr_forwards SET status = ?, error = ?, push_id = coalesce(?, push_id), updated_at = ? "
            "WHERE charger_id = ? AND csr_sha256 = ?", (status, error, push_id, at, charger_id, csr_sha256))

    def csr_answered(self, charger_id: str, csr_sha256: str, serial: str, answer: str, at: str) -> None:
        """The charger's answer to CertificateSigned, here and (certificate.answer) for the cloud."""
        self.conn.execute("UPDATE csr_forwards SET status = 'sent', answer = ?, updated_at = ? "
                          "WHERE charger_id = ? AND csr_sha256 = ?", (answer, at, charger_id, csr_sha256))
        self.certificate_answer(serial, answer)
        body = {"charger_id": charger_id, "csr_sha256": csr_sha256, "serial": serial, "answer": answer}
        OutboxStore.outbox_add(self, [(uuid.uuid4().hex, "status", ANSWER_TYPE, at, json.dumps(body))])

    def csrs_to_send(self, charger_id: str | None = None) -> list[dict[str, Any]]:
        """Certificates here that their charger has not been sent yet (oldest first)."""
        where, args = ("AND charger_id = ?", (charger_id,)) if charger_id else ("", ())
        return _rows(self.conn.execute(
            f"SELECT {_COLUMNS} FROM csr_forwards WHERE status = 'signed' {where} ORDER BY requested_at", args))

    def csrs_waiting_since(self, before: str) -> list[dict[str, Any]]:
        """CSRs the cloud has not answered since before `before`."""
        return _rows(self.conn.execute(
            f"SELECT {_COLUMNS} FROM csr_forwards WHERE status = 'waiting' AND requested_at < ? ORDER BY requested_at",
            (before,)))

    def csr_forwards(self, charger_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The latest CSRs sent to the cloud, newest first (without the PEM texts)."""
        where, args = _for_charger(charger_id)
        return _rows(self.conn.execute(
            "SELECT charger_id, csr_sha256, requested_at, status, serial, not_after, push_id, answer, error, "
            f"updated_at FROM csr_forwards {where} ORDER BY requested_at DESC LIMIT ?", (*args, limit)))
