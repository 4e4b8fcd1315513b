"""OCPP 2.0.1 block B at the edge: each station's device model, kept, and the variables the site needs, set.

After a station's accepted boot (edge/ocpp/v201/session.py calls `after_boot`):

1. **GetBaseReport(FullInventory)**: the station answers with NotifyReport parts (seqNo, tbc), each
   stored as it arrives (`report_part`): every component variable with its attributes and
   characteristics, in the journal's `device_variables` (edge/journal/device_model.py), at most
   MAX_VARIABLES per station. FullInventory rather than ConfigurationInventory: the read-only
   variables the edge needs to talk to the station properly (DeviceDataCtrlr.ItemsPerMessage, the
   EVSE's power and phases) are only in the full one.
2. **SetVariables** of EDGE_VARIABLES, in as many requests as the station's
   DeviceDataCtrlr.ItemsPerMessage[SetVariables] asks (B05.FR.xx, as TC_B_08 checks for GetVariables),
   once the report is in (or after REPORT_WAIT_S). Each result is logged; a Rejected or unknown
   variable is a warning, never a reason not to use the station: the edge handles any start and stop
   point (edge/ocpp/v201/transactions.py).

Every GetVariables/SetVariables answer, whoever asked (the core's read_settings/change_setting too),
updates the stored variables (`remember_answer`). And once a station is ready on a connection,
**GetTransactionStatus** (E14) asks whether it still has transaction messages queued, and, per
transaction the edge holds open on it, whether that one still runs (`transaction_status`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ocpp.v201 import call as call201

from edge.journal import Store
from edge.journal.device_model import MAX_VARIABLES
from edge.ocpp.masking import MASK, is_secret_variable

if TYPE_CHECKING:
    from edge.ocpp.server import Site

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


def set_requests(per_message: int) -> list[list[dict[str, Any]]]:
    """EDGE_VARIABLES as SetVariableData (snake_case), at most `per_message` a request."""
    data = [{"component": {"name": c}, "variable": {"name": v}, "attribute_value": value, "attribute_type": "Actual"}
            for c, v, value in EDGE_VARIABLES]
    size = max(1, per_message)
    return [data[i:i + size] for i in range(0, len(data), size)]


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
    await set_site_variables(site, charger_id)


async def set_site_variables(site: "Site", charger_id: str) -> None:
    assert site.commands is not None
    known = await site.journal.read(Store.device_variable, charger_id, "DeviceDataCtrlr", "ItemsPerMessage",
                                    instance="SetVariables")
    per_message = int(known) if known and known.isdigit() and int(known) > 0 else DEFAULT_ITEMS_PER_MESSAGE
    for data in set_requests(per_message):
        params = {"setVariableData": [{"component": d["component"], "variable": d["variable"],
                                       "attributeValue": d["attribute_value"], "attributeType": "Actual"}
                                      for d in data]}
        result = await site.commands.deliver(charger_id, "SetVariables", params,
                                             call201.SetVariables(set_variable_data=data), actor="edge",
                                             reason="the site's configuration after boot (docs/ocpp-201.md)")
        if result.outcome not in ("ok", "rejected"):
            log.warning("configure charger=%s: SetVariables %s: %s (the station keeps its own values)",
                        charger_id, result.outcome, result.response)
            return
        for item in result.response.get("setVariableResult", []) if isinstance(result.response, dict) else []:
            name = f"{item['component']['name']}.{item['variable']['name']}"
            status = item.get("attributeStatus")
            level = logging.INFO if status in ("Accepted", "RebootRequired") else logging.WARNING
            log.log(level, "configure charger=%s %s: %s%s", charger_id, name, status,
                    "" if level == logging.INFO else " (the station keeps its own value and is used as it is)")

