"""What the site's core asks of a charging station, in its own words.

`StationControl` is the one way sessions, authorization, charge records,
recovery, commissioning and the web API reach a station. A protocol adapter
implements it (edge/ocpp/v16/control.py, edge/ocpp/v201/control.py; edge/ocpp/control.py picks
the one of each station's connection):
it builds its version's message, sends it through the actions log
(edge/ocpp/commands.py: every request, refused ones too, is recorded with who
asked and why) and reads the answer back into domain words (`value`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from edge.stations.model import Availability, ChargingLimit, IdToken, ResetKind, Setting, Trigger


@dataclass(frozen=True)
class CommandResult:
    """What came of one request to a station, as the actions log recorded it."""
    action_id: int
    charger_id: str
    action: str             # the protocol's message name (the actions log shows what went on the wire)
    outcome: str            # ok | rejected | error | timeout | not-connected | invalid
    response: Any           # the station's answer as it sent it (a dict) or an error text
    # The answer in domain words, for the requests that ask something (a list version, settings, a list
    # update's status); None when there was no answer or nothing to read. Not part of the log's record.
    value: Any = field(default=None, compare=False)
    # What was sent, in the protocol's words (keys masked), as the actions log keeps it. Not in as_dict either.
    request: Any = field(default=None, compare=False)

    def as_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        del record["value"], record["request"]
        return record


# CALLERRORs that say the station cannot do this at all: asking again will not help (OCPP-J, both versions).
_PERMANENT_ERRORS = ("NotImplemented", "NotSupported")


def worth_retrying(result: CommandResult) -> bool:
    """Whether asking again later may get a different answer: no answer in time, or a
    CALLERROR such as SecurityError from a charger not ready yet. A refusal, a bad
    request or a lost connection (the next connection starts over) are not."""
    if result.outcome == "timeout":
        return True
    return (result.outcome == "error" and isinstance(result.response, str)
            and not result.response.startswith(_PERMANENT_ERRORS))


class StationControl(Protocol):
    """Requests to stations, by charger id. Each takes `actor` (who asked: "edge:recovery", an operator) and
    `reason` (why, for the actions log) and returns the logged `CommandResult`."""

    def is_connected(self, charger_id: str) -> bool: ...

    def is_ready(self, charger_id: str) -> bool:
        """Connected and listening (charger.ready seen on this connection)."""
        ...

    async def set_charging_limit(self, charger_id: str, limit: ChargingLimit, *, actor: str,
                                 reason: str) -> CommandResult: ...

    async def clear_charging_limit(self, charger_id: str, profile_id: int, *, actor: str,
                                   reason: str) -> CommandResult: ...

    async def remote_start(self, charger_id: str, evse: int, token: IdToken, *, actor: str,
                           reason: str) -> CommandResult: ...

    async def remote_stop(self, charger_id: str, transaction_id: int, *, actor: str, reason: str) -> CommandResult:
        ...

    async def reserve(self, charger_id: str, evse: int, token: IdToken, *, reservation_id: int, expires: str,
                      parent: str | None, actor: str, reason: str) -> CommandResult: ...

    async def cancel_reservation(self, charger_id: str, reservation_id: int, *, actor: str,
                                 reason: str) -> CommandResult: ...

    async def unlock(self, charger_id: str, evse: int, *, actor: str, reason: str) -> CommandResult: ...

    async def reset(self, charger_id: str, kind: ResetKind, *, actor: str, reason: str) -> CommandResult: ...

    async def change_availability(self, charger_id: str, evse: int, availability: Availability, *, actor: str,
                                  reason: str) -> CommandResult: ...

    async def trigger(self, charger_id: str, what: Trigger, *, evse: int | None = None, actor: str,
                      reason: str) -> CommandResult: ...

    async def clear_cache(self, charger_id: str, *, actor: str, reason: str) -> CommandResult:
        """Forget the authorization cache (a token was blocked)."""
        ...

    async def send_local_list(self, charger_id: str, update: Any, *, actor: str, reason: str) -> CommandResult:
        """One update of the local authorization list (edge.auth.local_list.Update);
        `value`: the station's ListUpdateStatus, None without an answer."""
        ...

    async def local_list_version(self, charger_id: str, *, actor: str, reason: str) -> CommandResult:
        """`value`: the version of the station's list, None when it has none (or did not answer)."""
        ...

    async def read_settings(self, charger_id: str, settings: Sequence[Setting] | None, *, actor: str,
                            reason: str) -> CommandResult:
        """`value`: {Setting: text} for those the station reported; None asks for all it has."""
        ...

    async def read_configuration(self, charger_id: str, *, actor: str, reason: str) -> CommandResult:
        """`value`: everything the station reports of its configuration, under its own names (what an
        installer reads in its manual), None without an answer."""
        ...

    async def change_setting(self, charger_id: str, setting: Setting, value: bool | int | str, *, actor: str,
                             reason: str) -> CommandResult: ...
