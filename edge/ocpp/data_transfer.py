"""DataTransfer at the edge, one decision for both OCPP versions (the 1.6 session's handler and the 2.0.1
services' block P call it): a meter key announcement (signed_values.py) is kept; a configured vendor's
message ([ocpp] data_transfer_vendors) is journaled, Accepted; any other vendor is UnknownVendorId."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from edge.journal import Store
from edge.ocpp import signed_values

if TYPE_CHECKING:
    from edge.ocpp.site import Site

log = logging.getLogger(__name__)

MAX_DATA_CHARS = 10_000      # 2.0.1's data may be any JSON: kept as JSON text up to this length


async def decide(site: "Site", charger_id: str, vendor_id: str, message_id: str | None, data: Any) -> str:
    """The DataTransfer status. 1.6's data is text (or absent) and is journaled as sent; 2.0.1's may be any
    JSON: journaled as JSON text unless it is text."""
    text = data if data is None or isinstance(data, str) else json.dumps(data)[:MAX_DATA_CHARS]
    if site.security is not None and signed_values.announces_meter_key(vendor_id, message_id):
        # A calibrated meter's public key (signed_values.py): kept to verify the signed readings.
        return await site.security.meter_keys.announced(charger_id, text)
    if vendor_id not in site.data_transfer_vendors:
        log.info("data transfer charger=%s vendor=%s message=%s: UnknownVendorId", charger_id, vendor_id, message_id)
        return "UnknownVendorId"
    await site.journal.write(Store.record_data_transfer, site.clock.now_iso(), charger_id, vendor_id, message_id,
                             text)
    return "Accepted"
