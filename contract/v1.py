"""Contract v1: the MQTT topic tree and every payload, as pydantic models.

Both the edge (edge/uplink) and the cloud (cloud/) import this module, so the
two sides cannot drift apart; docs/sync-protocol.md shows the JSON Schemas
generated from these models (`python -m contract.schemas`).

Topic tree (PREFIX = "sc/v1"):

  sc/v1/sites/{site}/up/{stream}   edge -> cloud  QoS 1, not retained   UpBatch
  sc/v1/sites/{site}/state         edge -> cloud  QoS 1, retained       SiteState (birth / last will)
  sc/v1/sites/{site}/ack           edge -> cloud  QoS 1, not retained   Ack
  sc/v1/sites/{site}/down/{kind}   cloud -> edge  QoS 1, retained for configuration documents,
                                                  not retained for commands       Down
  sc/v1/sites/{site}/down/certificate  cloud -> edge  QoS 1, not retained  Down (a charger's certificate the cloud
                                                  signed for a certificate.csr the site sent; added in 1)
  sc/v1/sites/{site}/down/receipt  cloud -> edge  QoS 1, not retained   Receipt (a batch is in the cloud database)
  sc/v1/sites/{site}/down/acked    cloud -> edge  QoS 1, not retained   AckReceipt (an ack is in the cloud database;
                                                  added in 1: the edge sends an ack again until this comes)

A site's MQTT username is its site id; the broker ACL lets it publish only
below sc/v1/sites/{its id}/ (up, state, ack) and read only its own down/.
The cloud checks again that the site in each payload is the site of the topic.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

VERSION = 1
PREFIX = "sc/v1"
# A payload larger than this is refused unread by both sides (and by the broker: message_size_limit).
MAX_PAYLOAD_BYTES = 256 * 1024
SITE_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
# Document versions: positive, and exact in every JSON reader (JavaScript's Number.MAX_SAFE_INTEGER);
# far below SQLite's and PostgreSQL's int64, so a version always fits both sides' databases.
MAX_VERSION = 2**53 - 1
# Inside a downlink document: nesting, integers and strings stay within what the site's journal and
# JSON readers take (a document's meaning is checked by the site; these bounds keep it storable).
MAX_DOCUMENT_DEPTH = 32
MAX_DOCUMENT_STRING = 4096
INT64 = (-2**63, 2**63 - 1)
# Message ids and other names that end up in logs and database rows: visible ASCII, no spaces.
MESSAGE_ID = r"^[\x21-\x7e]{1,64}$"

Stream = Literal["cdr", "session", "status", "alert", "telemetry"]
STREAMS: tuple[str, ...] = ("cdr", "session", "status", "alert", "telemetry")
# Never dropped from the edge's outbox, whatever the disk budget.
PRECIOUS: frozenset[str] = frozenset({"cdr", "session"})
# `certificate` came later in contract 1 (issue 17): a charger's certificate the cloud signed (not retained). An
# edge from before it refuses the topic as unknown (logged, not answered); a cloud sends it only to a site that
# sent a CSR up, which only an edge that knows it does.
DownKind = Literal["auth", "tariffs", "limits", "command", "certificate"]
DOWN_KINDS: tuple[str, ...] = ("auth", "tariffs", "limits", "command", "certificate")
RETAINED_DOWN: frozenset[str] = frozenset({"auth", "tariffs", "limits"})
# Below down/ too, so the broker ACL that lets a site read its own down/# covers it.
RECEIPT = "receipt"
# Added later in contract 1: the cloud's confirmation that it stored a site's ack. An edge from before
# it does not subscribe to anything new (down/+ covers it) and only logs it as an unknown topic.
ACKED = "acked"


class ContractError(ValueError):
    """A message that does not follow the contract; the text says what and where.

    `reason` is a short, stable word for counting rejections: topic, too_large, not_json,
    version, schema, site_mismatch, stream_mismatch, kind_mismatch (default: invalid)."""

    def __init__(self, message: str, reason: str = "invalid"):
        super().__init__(message)
        self.reason = reason


class _Model(BaseModel):
    # Unknown fields are refused: a payload from a newer contract must say so in `v`.
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- topics -------------------------------------------------------------------------------------------

def up_topic(site: str, stream: str) -> str:
    return f"{PREFIX}/sites/{site}/up/{stream}"


def state_topic(site: str) -> str:
    return f"{PREFIX}/sites/{site}/state"


def ack_topic(site: str) -> str:
    return f"{PREFIX}/sites/{site}/ack"


def down_topic(site: str, kind: str) -> str:
    return f"{PREFIX}/sites/{site}/down/{kind}"


def receipt_topic(site: str) -> str:
    return f"{PREFIX}/sites/{site}/down/{RECEIPT}"


def acked_topic(site: str) -> str:
    return f"{PREFIX}/sites/{site}/down/{ACKED}"


def down_filter(site: str) -> str:
    return f"{PREFIX}/sites/{site}/down/+"


# The cloud's subscriptions; with a shared group several cloud instances split the load.
CLOUD_FILTERS = (f"{PREFIX}/sites/+/up/+", f"{PREFIX}/sites/+/state", f"{PREFIX}/sites/+/ack")


def shared(filter_: str, group: str = "cloud") -> str:
    return f"$share/{group}/{filter_}"


_TOPIC = re.compile(rf"^{re.escape(PREFIX)}/sites/([^/]+)/(up/([^/]+)|state|ack|down/([^/]+))$")


def parse_topic(topic: str) -> tuple[str, str, str | None]:
    """-> (site, 'up' | 'state' | 'ack' | 'down' | 'receipt' | 'acked', stream or kind)."""
    match = _TOPIC.match(topic)
    if match is None:
        raise ContractError(f"topic {topic!r} is not in the v1 tree ({PREFIX}/sites/<site>/...)", "topic")
    site, rest, stream, kind = match.groups()
    if not SITE_ID.match(site):
        raise ContractError(f"topic {topic!r}: site id {site!r} is not valid", "topic")
    if stream is not None:
        if stream not in STREAMS:
            raise ContractError(f"topic {topic!r}: unknown stream {stream!r}; one of {', '.join(STREAMS)}", "topic")
        return site, "up", stream
    if kind is not None:
        if kind in (RECEIPT, ACKED):
            return site, kind, None
        if kind not in DOWN_KINDS:
            raise ContractError(f"topic {topic!r}: unknown kind {kind!r}; one of {', '.join(DOWN_KINDS)}", "topic")
        return site, "down", kind
    return site, rest, None


# --- edge -> cloud ------------------------------------------------------------------------------------

class Message(_Model):
    id: Annotated[str, Field(min_length=1, max_length=64)]    # stable: a redelivery has the same id
    seq: Annotated[int, Field(ge=1)]                          # per site and stream, no gaps, in order
    at: str                                                   # ISO 8601 UTC, when it happened at the site
    type: Annotated[str, Field(min_length=1, max_length=64)]  # e.g. cdr, session.started, status, alert.failsafe
    body: dict[str, Any]


class UpBatch(_Model):
    v: Literal[1] = 1
    site: str
    stream: Stream
    messages: Annotated[list[Message], Field(min_length=1, max_length=500)]


class SiteState(_Model):
    v: Literal[1] = 1
    site: str
    online: bool
    at: str
    software_version: str = ""
    backlog: dict[str, int] = {}       # undelivered messages per stream (birth only)
    # Added later in contract 1: the edge's connection counter, raised before each connection and the
    # same in that connection's birth and last will (persisted at the site). Several cloud instances
    # handle states in parallel; a state whose counter is below the one stored is stale (the will of
    # connection n handled after the birth of n + 1) and changes nothing. None: an edge from before it.
    connection: Annotated[int, Field(ge=1, le=2**53 - 1)] | None = None


Version = Annotated[int, Field(ge=1, le=MAX_VERSION)]


class CdrRevision(BaseModel):
    """What the body of a `cdr` message says about its place among the records of one session; the
    rest of the body is the edge's record (docs/charge-records.md), which the contract leaves open.
    These fields came later in contract 1 ("a body may gain fields"): a body without them is
    revision 1 and supersedes nothing. A revision is a new record with its own id, so a new message
    stored once like any other; `supersedes` names the record it replaces, which stays stored
    (billing credits the old and bills the new, nothing changes silently)."""
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: Annotated[str, Field(min_length=1, max_length=128)]
    revision: Version = 1
    supersedes: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    revision_reason: str | None = None


def cdr_revision(body: dict[str, Any]) -> CdrRevision | None:
    """A cdr body's revision fields, or None when its id or they are not usable (a receiver then
    keeps the record as revision 1: the record itself is never refused for them)."""
    try:
        return CdrRevision.model_validate(body)
    except ValidationError:
        return None


# Cloud-side CSR signing (issue 17, docs/security.md "Signed in the cloud"): a charger's CSR goes up on the
# status stream as a message of type CSR_TYPE with a CsrBody; the cloud answers with a Down of kind
# `certificate` whose document is a CertificateDocument; what the charger then answered goes up as ANSWER_TYPE.
CSR_TYPE = "certificate.csr"
ANSWER_TYPE = "certificate.answer"
SHA256_HEX = r"^[0-9a-f]{64}$"
CHARGER_ID = r"^[\x21-\x7e]{1,64}$"     # OCPP's identity: visible ASCII (the edge takes 1.6's 20 and more)


class CsrBody(BaseModel):
    """The body of a certificate.csr message (a receiver ignores fields it does not know)."""
    model_config = ConfigDict(extra="ignore", frozen=True)

    charger_id: Annotated[str, Field(pattern=CHARGER_ID)]
    csr: Annotated[str, Field(min_length=1, max_length=5500)]     # PEM; 5500: SignCertificate.csr's maxLength
    csr_sha256: Annotated[str, Field(pattern=SHA256_HEX)]         # of the PEM text as the charger sent it
    requested_at: str


class AnswerBody(BaseModel):
    """The body of a certificate.answer message: what the charger said to the CertificateSigned."""
    model_config = ConfigDict(extra="ignore", frozen=True)

    charger_id: Annotated[str, Field(pattern=CHARGER_ID)]
    csr_sha256: Annotated[str, Field(pattern=SHA256_HEX)]
    serial: Annotated[str, Field(max_length=64)]
    answer: Annotated[str, Field(max_length=300)]          # Accepted, Rejected, or why it could not be sent


class CertificateDocument(_Model):
    """The document of a `certificate` Down: the certificate signed for the charger's CSR `csr_sha256`
    (certificate_chain: PEM certificates, the charger's first, then any intermediates; each within a
    document string's 4,096 characters), or why the cloud refused to sign it (refused)."""
    charger_id: Annotated[str, Field(pattern=CHARGER_ID)]
    csr_sha256: Annotated[str, Field(pattern=SHA256_HEX)]
    certificate_chain: Annotated[list[Annotated[str, Field(max_length=MAX_DOCUMENT_STRING)]],
                                 Field(min_length=1, max_length=4)] | None = None
    refused: Annotated[str, Field(min_length=1, max_length=1000)] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> "CertificateDocument":
        if (self.refused is None) == (self.certificate_chain is None):
            raise ValueError("give either certificate_chain or refused")
        return self


class Ack(_Model):
    v: Literal[1] = 1
    site: str
    kind: DownKind
    id: Annotated[str, Field(max_length=64)]   # the Down message's id ('' when it could not be read)
    version: Version | None = None          # the document version it concerned
    status: Literal["applied", "ignored", "rejected", "done", "failed"]
    applied_version: Version | None = None  # the version in force after this
    error: str | None = None            # what was wrong, and where (rejected / failed)
    result: dict[str, Any] | None = None  # a command's outcome


# --- cloud -> edge ------------------------------------------------------------------------------------

class Receipt(_Model):
    """stored: the cloud has committed every message of seqs first_seq..last_seq of `stream` to
    its database (new or already there). Only this lets the edge forget them: a broker's PUBACK
    does not, since a broker can lose what it acknowledged (a restart, a full queue).
    rejected: the cloud refused the batch holding those seqs, for the reason in `error`; the
    edge sends them again one by one and sets aside the one that is refused alone."""
    v: Literal[1] = 1
    site: str
    stream: Stream
    first_seq: Annotated[int, Field(ge=1)]
    last_seq: Annotated[int, Field(ge=1)]
    last_id: Annotated[str, Field(min_length=1, max_length=64)]   # the message at last_seq: a check
    status: Literal["stored", "rejected"] = "stored"
    stored: Annotated[int, Field(ge=0)] = 0         # new in the cloud database
    duplicates: Annotated[int, Field(ge=0)] = 0     # were there already (a redelivery)
    error: Annotated[str, Field(max_length=1000)] | None = None   # why it was rejected


class AckReceipt(_Model):
    """The cloud has committed the site's ack of push `id` (known: the push is one of this cloud's;
    False: it is not, and nothing was changed). The edge sends an ack again, with back-off, until
    this comes: a broker hands an ack to one cloud instance, which may die before storing it."""
    v: Literal[1] = 1
    site: str
    kind: DownKind
    id: Annotated[str, Field(max_length=64)]
    status: Literal["applied", "ignored", "rejected", "done", "failed"]
    known: bool = True


class Down(_Model):
    v: Literal[1] = 1
    site: str
    kind: DownKind
    id: Annotated[str, Field(pattern=MESSAGE_ID)]
    # Configuration documents: strictly increasing per kind; older versions are ignored, the version
    # in force is acknowledged again (the cloud sends a document until the site has acknowledged it).
    version: Version | None = None
    mode: Literal["full", "diff"] = "full"
    document: dict[str, Any]
    # Commands: not executed after this time (a command queued while the site was offline goes stale).
    expires_at: Annotated[str, Field(max_length=40)] | None = None

    @field_validator("document")
    @classmethod
    def _storable(cls, document: dict[str, Any]) -> dict[str, Any]:
        problem = document_problem(document)
        if problem:
            raise ValueError(problem)
        return document


def document_problem(value: Any, where: str = "", depth: int = 0) -> str | None:
    """What makes a downlink document unstorable or unreadable (too deep, an integer beyond int64,
    an overlong string), naming where; None when there is nothing."""
    if depth > MAX_DOCUMENT_DEPTH:
        return f"{where or '(document)'}: nested more than {MAX_DOCUMENT_DEPTH} deep"
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return None
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            return f"{where}: {short(value)} is outside the 64-bit integer range"
        return None
    if isinstance(value, str):
        if len(value) > MAX_DOCUMENT_STRING:
            return f"{where}: a string of {len(value)} characters (at most {MAX_DOCUMENT_STRING})"
        return None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = ((f"[{i}]", v) for i, v in enumerate(value))
    else:
        return f"{where}: {type(value).__name__} is not JSON"
    for key, item in items:
        if isinstance(key, str) and len(key) > MAX_DOCUMENT_STRING:
            return f"{where}: a key of {len(key)} characters (at most {MAX_DOCUMENT_STRING})"
        inner = f"{where}{key}" if isinstance(value, list) else f"{where}.{str(key)[:40]}" if where else str(key)[:40]
        problem = document_problem(item, inner, depth + 1)
        if problem:
            return problem
    return None


def short(value: Any, limit: int = 80) -> str:
    """An offending value as an error names it: enough to find it, never the whole of it."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


# --- parsing ------------------------------------------------------------------------------------------

def _load(payload: bytes) -> Any:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD_BYTES} byte limit",
                            "too_large")
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(f"payload is not JSON: {exc}", "not_json") from None
    except RecursionError:      # [[[[...]]]] a few thousand deep fits in the size limit
        raise ContractError("payload is nested too deeply to be read", "not_json") from None


def _validate(model: type[_Model], data: Any, topic: str) -> Any:
    if isinstance(data, dict) and data.get("v") not in (None, VERSION):
        raise ContractError(f"{topic}: contract version {data.get('v')!r} is not supported (this side speaks v1)",
                            "version")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        got = "" if first["type"] == "missing" or isinstance(first.get("input"), dict) else \
            f", got {short(first.get('input'))}"
        raise ContractError(f"{topic}: {where}: {first['msg'].removeprefix('Value error, ')}{got} "
                            f"({exc.error_count()} problem(s))", "schema") from None


def parse(topic: str, payload: bytes) -> UpBatch | SiteState | Ack | Down | Receipt | AckReceipt:
    """A received message, checked against the contract and against its topic
    (the site and stream in the payload must be those of the topic)."""
    site, part, name = parse_topic(topic)
    model = {"up": UpBatch, "state": SiteState, "ack": Ack, "down": Down, RECEIPT: Receipt, ACKED: AckReceipt}[part]
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD_BYTES} byte limit",
                            "too_large")
    try:
        # The fast path (JSON parsed and checked in one go, in pydantic's Rust core) for good messages;
        # anything it refuses goes the slow way, which says precisely what is wrong.
        message = model.model_validate_json(payload)
    except ValidationError:
        message = _validate(model, _load(payload), topic)
    if message.site != site:
        raise ContractError(f"{topic}: payload names site {message.site!r}, the topic site {site!r}", "site_mismatch")
    if part == "up" and message.stream != name:
        raise ContractError(f"{topic}: payload stream {message.stream!r} differs from the topic's {name!r}",
                            "stream_mismatch")
    if part == RECEIPT and message.last_seq < message.first_seq:
        raise ContractError(f"{topic}: last_seq {message.last_seq} is before first_seq {message.first_seq}", "schema")
    if part == "down" and message.kind != name:
        raise ContractError(f"{topic}: payload kind {message.kind!r} differs from the topic's {name!r}",
                            "kind_mismatch")
    return message


def encode(message: _Model) -> bytes:
    return message.model_dump_json(exclude_none=True).encode()


def json_schemas() -> dict[str, dict]:
    """Every payload's JSON Schema, for the docs and for other implementations."""
    return {name: TypeAdapter(model).json_schema() for name, model in
            (("UpBatch", UpBatch), ("SiteState", SiteState), ("Ack", Ack), ("Down", Down),
             ("Receipt", Receipt), ("AckReceipt", AckReceipt), ("CertificateDocument", CertificateDocument))}


AnyMessage = Union[UpBatch, SiteState, Ack, Down, Receipt, AckReceipt]
