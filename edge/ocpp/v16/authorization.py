"""An authorization decision as OCPP 1.6 words it: the IdTagInfo of Authorize,
StartTransaction and StopTransaction answers (snake_case keys, as the ocpp library takes them)."""

from __future__ import annotations

from edge.auth.decide import AuthDecision


def id_tag_info(decision: AuthDecision, status: str | None = None) -> dict:
    """`status`: what the station is told when it differs from the decision (a start the site lets finish)."""
    info: dict = {"status": status or decision.status}
    if decision.expiry_date:
        info["expiry_date"] = decision.expiry_date
    if decision.parent_id_tag:
        info["parent_id_tag"] = decision.parent_id_tag
    return info
