"""OCPP 2.0.1 block B at the edge: each station's device model, kept, and the variables the site needs, set.

After a station's accepted boot (edge/ocpp/v201/session.py calls `after_boot`):

1. **GetBaseReport(FullInventory)**: the station answers with NotifyReport parts (seqNo, tbc), each
   stored as it arrives (`report_part`): every component variable with its attributes and
   characteristics, in the journal's `device_variables` (edge/journal/device_model.py), at most
   MAX_VARIABLES per station. FullInventory rather than ConfigurationInventory: the read-only
   variables the edge needs to talk to the station properly (DeviceDataCtrlr.ItemsPerMessage, the
   EVSE's power and phases) are only in the full one.
2. **SetVariables** of those EDGE_VARIABLES that are due (`decide`), in as many requests as the station's
   DeviceDataCtrlr.ItemsPerMessage[SetVariables] asks (B05.FR.xx, as TC_B_08 checks for GetVariables),
   once the report is in (or after REPORT_WAIT_S). Each result is logged; a Rejected or unknown
   variable is a warning, never a reason not to use the station: the edge handles any start and stop
   point (edge/ocpp/v201/transactions.py).

   Due, per variable (the journal's `device_settings` remembers what the edge set and what others set):
   the first time the edge meets the station, or when the edge's wanted value changed; afterwards only when
   this boot's report shows a value other than the one the edge set (the station was reset, or changed on
   its own panel). A value someone else set through the edge (an operator's SetVariables, by the local API
   or the cloud, that the station took) wins: the edge never sets that variable again, also when its own
   wanted value changes; the log and GET /api/v1/chargers/{id}/variables ("settings") say so. A variable the
   station refused (Rejected, UnknownVariable...) is not asked again until the edge's wanted value changes.

Every GetVariables/SetVariables answer, whoever asked (the core's read_settings/change_setting too),
updates the stored variables (`remember_answer`). And once a station is ready on a connection,
**GetTransactionStatus** (E14) asks whether it still has transaction messages queued, and, per
transaction the edge holds open on it, whether that one still runs (`transaction_status`).
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import time
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ocpp.v201 import call as call201

from edge.journal import Store
from edge.journal.device_model import MAX_VARIABLES
from edge.ocpp.masking import MASK, is_secret_variable

if TYPE_CHECKING:
    from edge.ocpp.site import Site

log = logging.getLogger(__name__)

REPORT_BASE = "FullInventory"
# How long the SetVariables wait for the report (to know ItemsPerMessage) before they go anyway.
REPORT_WAIT_S = 30.0
# What the site's sessions expect of a 2.0.1 station (docs/ocpp-201.md, "B Provisioning"): (component,
# variable, value). TxStartPoint PowerPathClosed, TxStopPoint EVConnected,Authorized: a transaction as 1.6
# has it (StartTransaction once a driver is authorized with the cable in, StopTransaction when either
# ends), so the same records, revisions and load manager read both versions alike. The edge decides every
# token itself (the Started's idToken): a token the station knows may start at once (LocalPreAuthorize),
# a remote start is authorized by the edge before it is asked (AuthorizeRemoteStart false), and a token
# the edge refuses ends the transaction (StopTxOnInvalidId). SampledDataCtrlr is load management's.
EDGE_VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("TxCtrlr", "TxStartPoint", "PowerPathClosed"),
    ("TxCtrlr", "TxStopPoint", "EVConnected,Authorized"),
    ("TxCtrlr", "StopTxOnInvalidId", "true"),
    ("AuthCtrlr", "LocalPreAuthorize", "true"),
    ("AuthCtrlr", "AuthorizeRemoteStart", "false"),
)
# A station that does not say how many it takes gets them in one request (the spec's minimum is 1, but
# a station that reports nothing takes what it gets or answers with an error, which is logged).
DEFAULT_ITEMS_PER_MESSAGE = len(EDGE_VARIABLES)

# True while the edge sets its own EDGE_VARIABLES: any other SetVariables answer is someone else's choice.
_BY_EDGE: contextvars.ContextVar[bool] = contextvars.ContextVar("device_model_by_edge", default=False)
_MANAGED = {(component, variable) for component, variable, _ in EDGE_VARIABLES}
_TAKEN = ("Accepted", "RebootRequired")

# requestIds unique across restarts (the station keys its NotifyReports by them): seconds since 2024.
_request_ids = itertools.count(max(1, int(time.time()) - 1_704_067_200))
# (station, requestId) -> set once the report's last part (tbc false) is stored.
_reports_done: dict[tuple[str, int], asyncio.Event] = {}


class ReportRefused(ValueError):
    """A NotifyReport part the edge cannot store as it is (the message says what); nothing of it is stored."""


# -- the core: payloads to rows ----------------------------------------------------------------------

def _key(component: Mapping[str, Any], variable: Mapping[str, Any], attribute_type: str | None) -> dict[str, Any]:
    evse = component.get("evse") or {}
    return {"component": str(component.get("name", "")), "component_instance": str(component.get("instance") or ""),
            "evse_id": int(evse.get("id") or 0), "connector_id": int(evse.get("connector_id") or 0),
            "variable": str(variable.get("name", "")), "variable_instance": str(variable.get("instance") or ""),
            "attribute_type": str(attribute_type or "Actual")}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if abs(number) <= 1e15 else None


def report_rows(report_data: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """A NotifyReport's reportData (snake_case, schema-valid) as rows of device_variables: one per
    variable attribute. Refuses (ReportRefused) a part that names an EVSE or connector outside 0..1000
    or one variable twice with the same attribute, so a station's mistake is an error it sees, not a
    silently half-stored report."""
    rows: list[dict[str, Any]] = []
    seen: set[tuple] = set()
    for n, item in enumerate(report_data or []):
        component, variable = item.get("component") or {}, item.get("variable") or {}
        characteristics = item.get("variable_characteristics") or {}
        evse = component.get("evse") or {}
        for field, bound in (("evse.id", evse.get("id")), ("evse.connectorId", evse.get("connector_id"))):
            if bound is not None and not 0 <= bound <= 1000:
                raise ReportRefused(f"reportData[{n}]: component {component.get('name')!r} {field} {bound} "
                                    "is outside 0..1000")
        for attribute in item.get("variable_attribute") or []:
            row = _key(component, variable, attribute.get("type"))
            identity = tuple(row.values())
            if identity in seen:
                raise ReportRefused(f"reportData[{n}]: {row['component']}.{row['variable']} "
                                    f"({row['attribute_type']}) reported twice in one part")
            seen.add(identity)
            row.update(value=attribute.get("value"), mutability=attribute.get("mutability"),
                       data_type=characteristics.get("data_type"), unit=characteristics.get("unit"),
                       min_limit=_number(characteristics.get("min_limit")),
                       max_limit=_number(characteristics.get("max_limit")),
                       values_list=characteristics.get("values_list"), status=None)
            rows.append(row)
    return rows


def answer_rows(request: Any, answer: Any) -> tuple[str, list[dict[str, Any]]]:
    """A GetVariables/SetVariables exchange (the library's snake_case messages) as rows: a Get's
    Accepted value, a Set's Accepted value (what the edge wrote); every result's status. -> (source, rows)."""
    if isinstance(request, call201.SetVariables):
        source, sent, results = "SetVariables", request.set_variable_data, answer.set_variable_result
    else:
        source, sent, results = "GetVariables", request.get_variable_data, answer.get_variable_result
    written = {(_freeze(i["component"]), _freeze(i["variable"]), i.get("attribute_type") or "Actual"):
               i.get("attribute_value") for i in sent or []} if source == "SetVariables" else {}
    rows = []
    for result in results or []:
        component, variable = result.get("component") or {}, result.get("variable") or {}
        row = _key(component, variable, result.get("attribute_type"))
        status = result.get("attribute_status")
        value = None
        if status == "Accepted":
            value = result.get("attribute_value") if source == "GetVariables" else \
                written.get((_freeze(component), _freeze(variable), row["attribute_type"]))
            if value is not None and is_secret_variable(variable.get("name")):
                value = MASK        # a password the edge set is never kept (edge/ocpp/masking.py)
        row.update(value=value, mutability=None, data_type=None, unit=None, min_limit=None, max_limit=None,
                   values_list=None, status=status)
        rows.append(row)
    return source, rows


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


def set_requests(per_message: int, variables: Iterable[tuple[str, str, str]] = EDGE_VARIABLES
                 ) -> list[list[dict[str, Any]]]:
    """(component, variable, value) as SetVariableData (snake_case), at most `per_message` a request."""
    data = [{"component": {"name": c}, "variable": {"name": v}, "attribute_value": value, "attribute_type": "Actual"}
            for c, v, value in variables]
    size = max(1, per_message)
    return [data[i:i + size] for i in range(0, len(data), size)]


def decide(wanted: str, setting: Mapping[str, Any] | None, reported: str | None) -> tuple[bool, str]:
    """Whether the edge sets a variable it manages now, and why (for the log). `setting`: the journal's
    device_settings row (None: the edge never set it nor saw it set); `reported`: the value this boot's
    report gave (None: not reported this time)."""
    if setting is not None and setting.get("operator_at"):
        return False, (f"kept {setting.get('operator_value')!r}: set through the edge by someone else at "
                       f"{setting['operator_at']}")
    if setting is None or setting.get("wanted") is None:
        return True, "first set on this station"
    if setting["wanted"] != wanted:
        return True, f"the edge's value changed from {setting['wanted']!r}"
    if setting.get("set_status") not in _TAKEN:
        return False, f"the station answered {setting.get('set_status')} to {wanted!r}; not asked again"
    if reported is None:
        return False, "not in this boot's report; kept as set"
    if reported != wanted:
        return True, f"the station reports {reported!r}, not the {wanted!r} the edge set"
    return False, "as set"


def operator_writes(request: Any, answer: Any) -> list[tuple[str, str, str, str]]:
    """A SetVariables exchange's writes of managed variables (the station as a whole, Actual) that the
    station took: [(component, variable, value, status)]."""
    sent = {(i["component"].get("name"), i["variable"].get("name")): str(i.get("attribute_value"))
            for i in request.set_variable_data or []
            if not i["component"].get("instance") and not i["component"].get("evse")
            and not i["variable"].get("instance") and (i.get("attribute_type") or "Actual") == "Actual"}
    writes = []
    for result in answer.set_variable_result or []:
        component, variable = result.get("component") or {}, result.get("variable") or {}
        key = (component.get("name"), variable.get("name"))
        if (key in _MANAGED and key in sent and result.get("attribute_status") in _TAKEN
                and not component.get("instance") and not component.get("evse") and not variable.get("instance")
                and (result.get("attribute_type") or "Actual") == "Actual"):
            writes.append((key[0], key[1], sent[key], result["attribute_status"]))
    return writes


MAX_OPERATOR_ITEMS = 50
_ATTRIBUTE_TYPES = ("Actual", "Target", "MinSet", "MaxSet")
_NAME_FIELDS = {"component": True, "variable": True, "component_instance": False, "variable_instance": False}


def operator_request(body: Any) -> tuple[list[dict[str, Any]], str]:
    """POST /api/v1/chargers/{id}/variables's body {"set": [{"component", "variable", "value", optional "evse",
    "connector", "component_instance", "variable_instance", "attribute_type"}], "reason"} as SetVariableData
    (snake_case) and the reason. ValueError says what is wrong and where (the 2.0.1 schema's bounds)."""
    if not isinstance(body, dict):
        raise ValueError("the body is a JSON object")
    unknown = sorted(set(body) - {"set", "reason"})
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(map(repr, unknown))}; expected 'set' and 'reason'")
    reason, items = body.get("reason"), body.get("set")
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("reason is required (a string): the actions log says why every command was sent")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_OPERATOR_ITEMS:
        raise ValueError(f"set is a list of 1 to {MAX_OPERATOR_ITEMS} variables")
    data, seen = [], set()
    for n, item in enumerate(items):
        where = f"set[{n}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where} is an object")
        unknown = sorted(set(item) - set(_NAME_FIELDS) - {"value", "evse", "connector", "attribute_type"})
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
        names = {}
        for field, required in _NAME_FIELDS.items():
            value = item.get(field)
            if value is None and not required:
                continue
            if not isinstance(value, str) or not 1 <= len(value) <= 50:
                raise ValueError(f"{where}.{field} is a text of 1 to 50 characters")
            names[field] = value
        value = item.get("value")
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int):
            value = str(value)
        if not isinstance(value, str) or len(value) > 1000:
            raise ValueError(f"{where}.value is a text of at most 1000 characters (or a whole number, true, false)")
        attribute_type = item.get("attribute_type", "Actual")
        if attribute_type not in _ATTRIBUTE_TYPES:
            raise ValueError(f"{where}.attribute_type is one of {', '.join(_ATTRIBUTE_TYPES)}")
        evse, connector = item.get("evse"), item.get("connector")
        for field, number in (("evse", evse), ("connector", connector)):
            if number is not None and (isinstance(number, bool) or not isinstance(number, int)
                                       or not 0 <= number <= 1000):
                raise ValueError(f"{where}.{field} is a whole number 0..1000")
        if connector is not None and evse is None:
            raise ValueError(f"{where}: a connector is named with its evse")
        component: dict[str, Any] = {"name": names["component"]}
        if "component_instance" in names:
            component["instance"] = names["component_instance"]
        if evse is not None:
            component["evse"] = {"id": evse, **({"connector_id": connector} if connector is not None else {})}
        variable: dict[str, Any] = {"name": names["variable"]}
        if "variable_instance" in names:
            variable["instance"] = names["variable_instance"]
        identity = (_freeze(component), _freeze(variable), attribute_type)
        if identity in seen:
            raise ValueError(f"{where}: {names['component']}.{names['variable']} ({attribute_type}) named twice")
        seen.add(identity)
        data.append({"component": component, "variable": variable, "attribute_value": value,
                     "attribute_type": attribute_type})
    return data, reason


async def set_by_operator(site: "Site", charger_id: str, data: list[dict[str, Any]], *, actor: str,
                          reason: str) -> Any:
    """An operator's SetVariables through the edge: sent as asked; what the station takes of the variables the
    edge manages is kept from then on (`remember_answer`). -> the command's result (the actions log's)."""
    assert site.commands is not None
    def camel(d: dict[str, Any]) -> dict[str, Any]:
        component = dict(d["component"])
        if "evse" in component:
            evse = component["evse"]
            component["evse"] = {"id": evse["id"], **({"connectorId": evse["connector_id"]}
                                                      if "connector_id" in evse else {})}
        return {"component": component, "variable": d["variable"], "attributeValue": d["attribute_value"],
                "attributeType": d["attribute_type"]}
    params = {"setVariableData": [camel(d) for d in data]}
    return await site.commands.deliver(charger_id, "SetVariables", params, call201.SetVariables(set_variable_data=data),
                                       actor=actor, reason=reason)


# -- the shell ---------------------------------------------------------------------------------------

async def report_part(site: "Site", charger_id: str, request_id: int, seq_no: int, tbc: bool,
                      generated_at: str, report_data: list | None) -> None:
    """One NotifyReport part stored (ReportRefused: nothing of it is stored, the caller answers an error)."""
    rows = report_rows(report_data)
    at = site.clock.now_iso()
    counts = await site.journal.write(Store.store_report_part, charger_id, request_id, seq_no, not tbc, rows,
                                      generated_at, at)
    if counts["dropped"]:
        log.error("device model charger=%s request=%s seq_no=%s: %d variables not stored: the edge keeps at most "
                  "%d per station", charger_id, request_id, seq_no, counts["dropped"], MAX_VARIABLES)
    log.info("device model charger=%s report=%s part=%s tbc=%s variables=%d (report so far: %d parts, %d variables)",
             charger_id, request_id, seq_no, tbc, counts["stored"], counts["parts"], counts["items"])
    if not tbc:
        done = _reports_done.get((charger_id, request_id))
        if done is not None:
            done.set()


async def remember_answer(site: "Site", charger_id: str, request: Any, answer: Any) -> None:
    """A GetVariables/SetVariables answer kept in the station's device model."""
    source, rows = answer_rows(request, answer)
    stored, dropped = await site.journal.write(Store.upsert_variables, charger_id, rows, source,
                                               site.clock.now_iso())
    if dropped:
        log.error("device model charger=%s: %d %s results not stored: the edge keeps at most %d variables per "
                  "station", charger_id, dropped, source, MAX_VARIABLES)
    if isinstance(request, call201.SetVariables) and not _BY_EDGE.get():
        for component, variable, value, status in operator_writes(request, answer):
            await site.journal.write(Store.note_operator_setting, charger_id, component, variable, value, status,
                                     site.clock.now_iso())
            log.info("configure charger=%s %s.%s: %r set through the edge (%s); the edge keeps it from now on",
                     charger_id, component, variable, value, status)


async def after_boot(site: "Site", charger_id: str) -> None:
    """GetBaseReport, then the site's variables set (see the module's docstring)."""
    commands = site.commands
    if commands is None:
        return
    request_id = next(_request_ids)
    await site.journal.write(Store.open_device_report, charger_id, request_id, REPORT_BASE, site.clock.now_iso())
    done = _reports_done[(charger_id, request_id)] = asyncio.Event()
    try:
        params = {"requestId": request_id, "reportBase": REPORT_BASE}
        result = await commands.deliver(charger_id, "GetBaseReport", params,
                                        call201.GetBaseReport(request_id=request_id, report_base=REPORT_BASE),
                                        actor="edge", reason="device model after boot (docs/ocpp-201.md)")
        if result.outcome == "ok":
            try:
                await asyncio.wait_for(done.wait(), REPORT_WAIT_S)
            except asyncio.TimeoutError:
                log.warning("device model charger=%s: report %s not complete after %.0f s; setting the site's "
                            "variables anyway", charger_id, request_id, REPORT_WAIT_S)
        else:
            log.warning("device model charger=%s: GetBaseReport %s: %s %s", charger_id, REPORT_BASE, result.outcome,
                        result.response)
    finally:
        _reports_done.pop((charger_id, request_id), None)
    await set_site_variables(site, charger_id, f"NotifyReport {request_id}")


async def set_site_variables(site: "Site", charger_id: str, report: str | None = None) -> None:
    """The EDGE_VARIABLES that are due (`decide`; `report`: the source name of this boot's report) set, and
    what the station answered remembered. Ends with one log line: what was set, what kept and why."""
    assert site.commands is not None
    settings = {(r["component"], r["variable"]): r
                for r in await site.journal.read(Store.device_settings, charger_id)}
    due, kept = [], []
    for component, variable, wanted in EDGE_VARIABLES:
        row = await site.journal.read(Store.device_variable_read, charger_id, component, variable)
        reported = row["value"] if row and report is not None and row["source"] == report else None
        go, why = decide(wanted, settings.get((component, variable)), reported)
        (due if go else kept).append((component, variable, wanted))
        log.info("configure charger=%s %s.%s: %s %s", charger_id, component, variable,
                 "setting" if go else "not set:", why)
    known = await site.journal.read(Store.device_variable, charger_id, "DeviceDataCtrlr", "ItemsPerMessage",
                                    instance="SetVariables")
    per_message = int(known) if known and known.isdigit() and int(known) > 0 else DEFAULT_ITEMS_PER_MESSAGE
    wanted_of = {(c, v): value for c, v, value in EDGE_VARIABLES}
    done = []
    for data in set_requests(per_message, due):
        params = {"setVariableData": [{"component": d["component"], "variable": d["variable"],
                                       "attributeValue": d["attribute_value"], "attributeType": "Actual"}
                                      for d in data]}
        by_edge = _BY_EDGE.set(True)
        try:
            result = await site.commands.deliver(charger_id, "SetVariables", params,
                                                 call201.SetVariables(set_variable_data=data), actor="edge",
                                                 reason="the site's configuration after boot (docs/ocpp-201.md)")
        finally:
            _BY_EDGE.reset(by_edge)
        if result.outcome not in ("ok", "rejected"):
            log.warning("configure charger=%s: SetVariables %s: %s (the station keeps its own values; set at its "
                        "next boot)", charger_id, result.outcome, result.response)
            break
        notes = []
        for item in result.response.get("setVariableResult", []) if isinstance(result.response, dict) else []:
            key = (item["component"]["name"], item["variable"]["name"])
            status = item.get("attributeStatus")
            if key in wanted_of and not item["component"].get("evse") and not item["variable"].get("instance"):
                notes.append((key[0], key[1], wanted_of[key], str(status)))
                done.append(f"{key[0]}.{key[1]}={status}")
            level = logging.INFO if status in _TAKEN else logging.WARNING
            log.log(level, "configure charger=%s %s.%s: %s%s", charger_id, key[0], key[1], status,
                    "" if level == logging.INFO else " (the station keeps its own value and is used as it is)")
        await site.journal.write(Store.note_edge_settings, charger_id, notes, site.clock.now_iso())
    log.info("configure charger=%s done: set %s; not set %s", charger_id, ", ".join(done) or "none",
             ", ".join(f"{c}.{v}" for c, v, _ in kept) or "none")

