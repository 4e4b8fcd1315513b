"""Who may charge where: the authorization decision as a pure function.

No I/O and no clock of its own: the model, the place, the time and the
running sessions are passed in. Invariants (property-tested):
a blocked or expired token is never Accepted; a private charge group never
admits a token outside its user groups; free-vend never needs a token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Mapping
from zoneinfo import ZoneInfo

from edge.auth.model import AuthModel, ChargeGroup, IdToken

Status = Literal["Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"]
Method = Literal["rfid", "remote", "free-vend"]


@dataclass(frozen=True)
class AuthDecision:
    status: Status
    reason: str
    token: IdToken | None = None      # the token found, if any
    expiry_date: str | None = None
    parent_id_tag: str | None = None  # the user group: chargers let a group member stop another's session
    charge_group: str | None = None   # the group that admitted it
    anonymous: bool = False           # free-vend without a known token

    @property
    def user_group(self) -> str | None:
        return self.token.user_group if self.token else None


def _access(model: AuthModel, group: ChargeGroup, token: IdToken | None, local: datetime) -> tuple[bool, str]:
    """Does this charge group admit this token (None: no token) now?"""
    policy = group.policy
    if group.opening_hours is not None and not group.opening_hours.is_open(local):
        if group.outside_hours == "inoperative":
            return False, f'charge group "{group.id}" is closed now (opening hours)'
        policy = "private"  # operative-private: only the group's own users outside hours
    if policy == "free-vend":
        return True, f'charge group "{group.id}" is free vend'
    if token is None:
        return False, "no token"
    if policy == "all-known":
        return True, f'charge group "{group.id}" admits every known token'
    if token.user_group in model.admitted_groups(group.id):
        return True, f'user group "{token.user_group}" may charge in private charge group "{group.id}"'
    return False, f'user group "{token.user_group}" may not charge in private charge group "{group.id}"'


def decide(model: AuthModel, *, charger_id: str, connector_id: int | None, id_tag: str | None, now: datetime,
           tz: ZoneInfo, running: Mapping[str, tuple[str, int]] | None = None) -> AuthDecision:
    """The decision for `id_tag` (None: free vend, no token) at an EVSE.

    connector_id None is an Authorize, which names no connector: any EVSE of
    the charger counts. `running`: canonical id tag -> (charger, connector)
    of its running session, for ConcurrentTx.
    """
    token = model.find(id_tag) if id_tag is not None else None
    if id_tag is not None and token is not None:
        group = model.user_groups[token.user_group]
        parent = group.id
        expiry = token.expiry.isoformat() if token.expiry else None
        if token.status == "Blocked":
            return AuthDecision("Blocked", "token is blocked", token, parent_id_tag=parent)
        if token.expiry is not None and token.expiry <= now:
            return AuthDecision("Expired", f"token expired {token.expiry.isoformat()}", token, expiry, parent)
        if group.archived:
            return AuthDecision("Invalid", f'user group "{group.id}" is archived', token, parent_id_tag=parent)
    else:
        parent = expiry = None

    local = now.astimezone(tz)
    groups = model.groups_of(charger_id, connector_id)
    admitted: tuple[bool, str, str | None] = (False, "", None)
    if not groups:
        if model.default_policy == "closed":
            admitted = (False, "this EVSE is in no charge group and the site is closed by default", None)
        elif model.default_policy == "free-vend":
            admitted = (True, "this EVSE is in no charge group; the site default is free vend", None)
        else:
            admitted = (token is not None, "this EVSE is in no charge group; the site admits every known token"
                        if token is not None else "no token", None)
    else:
        reasons = []
        for group in sorted(groups, key=lambda g: g.id):
            ok, why = _access(model, group, token, local)
            if ok:
                admitted = (True, why, group.id)
                break
            reasons.append(why)
        else:
            admitted = (False, "; ".join(reasons), None)

    ok, why, via = admitted
    if not ok:
        if id_tag is not None and token is None:
            return AuthDecision("Invalid", "unknown token" + ("" if why == "no token" else f" ({why})"))
        return AuthDecision("Invalid", why, token, parent_id_tag=parent)

    if token is not None and running and not model.user_groups[token.user_group].allow_concurrent:
        where = running.get(token.id_tag)
        # Tapping the same card at the charger where it charges (to stop) is not concurrent.
        same_place = where is not None and where[0] == charger_id and connector_id in (None, where[1])
        if where is not None and not same_place:
            return AuthDecision("ConcurrentTx", f"token already charges at {where[0]} connector {where[1]}",
                                token, expiry, parent, via)
    return AuthDecision("Accepted", why, token, expiry, parent, via, anonymous=token is None)
