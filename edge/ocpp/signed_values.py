"""Signed meter values (German calibration law, Eichrecht): kept with their transaction, verified for the record.

A charger with a calibrated meter sends, next to its plain readings, sampled values of format SignedData:
OCMF (`OCMF|{payload}|{signature}`, S.A.F.E. e.V.) or EDL (a hex blob some meters' data loggers make).
They are stored exactly as sent (signed_meter_values) before the charger is answered, with the
transaction they belong to, and the charge record carries them, verified, unverifiable or invalid
(edge/cdr/signed_data.py).

The key per charger comes from the config (`meter_public_key`) or the charger: announced with a
DataTransfer (vendorId "generalConfiguration", messageId "setMeterConfiguration", as German
calibration-law chargers such as KEBA's send after boot: `meter_configuration_keys`), sent with each signed
value by a 2.0.1 station (its publicKey), or read once it is seen to sign: GetConfiguration of METER_KEY_NAMES
from a 1.6 charger, Setting.METER_PUBLIC_KEY (FiscalMetering.PublicKey, GetVariables) from a 2.0.1 station.
It is kept in meter_public_keys. The config's key wins over what a charger says. A charger's first session
before its key was known is unverifiable: set meter_public_key where that matters.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from typing import Any, Callable

from edge.cdr.signed_data import encoding_of, valid_public_key

from edge.journal import Store
from edge.ocpp.site import Site, speaks_201
from edge.stations.model import Setting

log = logging.getLogger(__name__)

# Configuration keys chargers are known to show their meter's public key under (vendor-specific).
METER_KEY_NAMES = ("MeterPublicKey", "SignedMeterPublicKey", "MeterPublicKey1")
# The DataTransfer that announces meters and their keys (OCPP has no message for it in 1.6). vendorId and
# messageId are CiStrings: compared without case.
METER_CONFIGURATION = ("generalconfiguration", "setmeterconfiguration")


# -- pure ---------------------------------------------------------------------------------------------

def signed_of(meter_value: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The SignedData sampled values of a MeterValues or transactionData list (the library's snake_case).
    A 2.0.1 signedMeterValue arrives here as a SignedData value too (as_signed_data): its encodingMethod
    names the encoding where the data does not show it."""
    out = []
    for entry in meter_value:
        for sv in entry.get("sampled_value", []):
            if sv.get("format") == "SignedData" and isinstance(sv.get("value"), str) and sv["value"]:
                encoding = encoding_of(sv["value"])
                if encoding == "other" and sv.get("encoding_method"):
                    encoding = str(sv["encoding_method"])[:50]
                out.append({"timestamp": entry.get("timestamp", ""), "context": sv.get("context"),
                            "measurand": sv.get("measurand") or "Energy.Active.Import.Register",
                            "encoding": encoding, "signed_data": sv["value"]})
    return out


def as_signed_data(signed: dict[str, Any]) -> dict[str, Any]:
    """A 2.0.1 signedMeterValue {signedMeterData, signingMethod, encodingMethod, publicKey} (snake_case) as
    1.6's SignedData sampled value, so it is kept and carried by the charge record as 1.6's are. 2.0.1 sends
    the data Base64 encoded: OCMF inside is kept as its text (what the record verifies, as 1.6's OCMF);
    anything else as it came. The key, if any, rides along for `received` (meter_key_of)."""
    data = str(signed.get("signed_meter_data") or "")
    decoded = _base64_text(data)
    if decoded is not None and decoded.startswith("OCMF|"):
        data = decoded
    return {"format": "SignedData", "value": data, "encoding_method": signed.get("encoding_method"),
            "signing_method": signed.get("signing_method"), "public_key": signed.get("public_key")}


def meter_key_of(public_key: object) -> str | None:
    """A 2.0.1 publicKey (Base64 of the DER key, or of its hex; some stations send the hex itself) as the
    hex DER meter key the records are verified with, or None."""
    if not isinstance(public_key, str) or not public_key.strip():
        return None
    text = public_key.strip()
    direct = valid_public_key(text) if len(text) <= 2048 else None
    if direct:
        return direct
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    as_text = _ascii(raw)
    return (valid_public_key(as_text) if as_text else None) or valid_public_key(raw.hex())


def _base64_text(data: str) -> str | None:
    try:
        return _ascii(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return None


def _ascii(raw: bytes) -> str | None:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


def announces_meter_key(vendor_id: object, message_id: object) -> bool:
    return (isinstance(vendor_id, str) and isinstance(message_id, str)
            and (vendor_id.lower(), message_id.lower()) == METER_CONFIGURATION)


def meter_configuration_keys(data: object) -> dict[int, str]:
    """The meter keys of a setMeterConfiguration DataTransfer's data, by connector:
    `{"meters": [{"connectorId": 1, "meterSerial": "...", "type": "SIGNATURE", "publicKey": "<hex DER>"}]}`.
    Raises ValueError saying what is wrong (not JSON, no meters, a key that is not a public key)."""
    if not isinstance(data, str):
        raise ValueError("data is missing: a JSON text with meters is expected")
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError):
        raise ValueError("data is not JSON") from None
    meters = parsed.get("meters") if isinstance(parsed, dict) else None
    if not isinstance(meters, list) or not meters:
        raise ValueError('data has no "meters" list')
    found: dict[int, str] = {}
    for index, meter in enumerate(meters[:16]):
        where = f"meters[{index}]"
        connector = meter.get("connectorId") if isinstance(meter, dict) else None
        if not isinstance(connector, int) or isinstance(connector, bool) or not 0 <= connector <= 1000:
            raise ValueError(f"{where}.connectorId: a connector number is expected")
        key = valid_public_key(str(meter.get("publicKey") or ""))
        if key is None:
            raise ValueError(f"{where}.publicKey: not a public key (hex DER)")
        found[connector] = key
    return found


# -- the shell -------------------------------------------------------------------------------------------

async def received(site: "Site", charger_id: str, connector_id: int, transaction_id: int | None,
                   meter_value: list[dict[str, Any]] | None) -> None:
    """Called by the MeterValues and StopTransaction handlers before they answer: on disk first. The first
    signed value of a charger whose meter key the edge does not know yet makes it ask the charger for it."""
    values = signed_of(meter_value or [])
    if values:
        await site.journal.write(Store.keep_signed_values, charger_id, connector_id, transaction_id, values,
                                 site.clock.now_iso())
        if site.security is not None:
            carried = next((key for key in map(meter_key_of, _public_keys(meter_value or [])) if key), None)
            if carried is not None:     # a 2.0.1 station sends the key with the value (PublicKeyWithSignedMeterValue)
                await site.security.meter_keys.carried(charger_id, carried)
            site.security.meter_keys.wanted(charger_id)


def _public_keys(meter_value: list[dict[str, Any]]) -> list[Any]:
    return [sv.get("public_key") for entry in meter_value for sv in entry.get("sampled_value", [])
            if sv.get("format") == "SignedData" and sv.get("public_key")]


class MeterKeys:
    """Each charger's meter key into the journal: the config's at start; for a charger without one, read
    from the charger (its configuration keys METER_KEY_NAMES) once it is seen to sign, and again whenever it
    is ready on a new connection after that. Chargers that never send signed values are never asked."""

    def __init__(self, site: "Site", configured: Callable[[str], str | None]):
        self.site = site
        self._configured = configured
        self._known: dict[str, str] = {}          # charger -> key (config or read)
        self._signing: set[str] = set()           # chargers seen sending signed values
        self._carried: set[str] = set()           # chargers that send their key with their values (2.0.1)
        self._tasks: set[asyncio.Task] = set()

    async def run(self) -> None:
        events = self.site.bus.subscribe(maxsize=1000)
        try:
            now = self.site.clock.now_iso()
            for charger_id in self.site.directory.ids():
                key = self._configured(charger_id)
                if key:
                    await self.site.journal.write(Store.set_meter_key, charger_id, key, "config", now)
            self._known = {c: k["public_key"] for c, k in (await self.site.journal.read(Store.meter_keys)).items()}
            self._signing |= set(await self.site.journal.read(Store.signing_chargers))
            while True:
                event = await events.get()
                if event.kind == "charger.ready" and event.charger_id in self._signing:
                    self._ask_soon(event.charger_id)
        finally:
            self.site.bus.unsubscribe(events)

    def wanted(self, charger_id: str) -> None:
        """A charger sent signed values: ask for its key the first time (not inline: handlers answer first)."""
        if charger_id in self._signing:
            return
        self._signing.add(charger_id)
        self._ask_soon(charger_id)

    def _ask_soon(self, charger_id: str) -> None:
        if self._configured(charger_id) or charger_id in self._carried:
            return
        if self.site.control is not None and not self.site.control.is_ready(charger_id):
            # Nothing is sent to a charger before it is ready (its first frame answered, docs/ocpp.md):
            # it is in _signing, so its charger.ready asks.
            return
        task = asyncio.create_task(self.ask(charger_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def announced(self, charger_id: str, data: object) -> str:
        """A setMeterConfiguration DataTransfer: its key kept for the charger; the DataTransfer's status.
        The edge keeps one key per charger, so meters announcing different keys are refused (their values
        stay unverifiable rather than checked against another meter's key)."""
        try:
            by_connector = meter_configuration_keys(data)
        except ValueError as exc:
            log.warning("meter key from charger=%s refused: %s", charger_id, exc)
            return "Rejected"
        distinct = set(by_connector.values())
        if len(distinct) > 1:
            log.warning("meter key from charger=%s refused: its meters announce %d different keys and the edge "
                        "keeps one per charger (connectors %s)", charger_id, len(distinct), sorted(by_connector))
            return "Rejected"
        key = distinct.pop()
        configured = self._configured(charger_id)
        if configured:
            if valid_public_key(configured) != key:
                log.warning("charger=%s announces a meter key that is not the config's meter_public_key: the "
                            "config's is used", charger_id)
            return "Accepted"
        if self._known.get(charger_id) != key:
            await self.site.journal.write(Store.set_meter_key, charger_id, key, "DataTransfer setMeterConfiguration",
                                          self.site.clock.now_iso())
            self._known[charger_id] = key
            log.info("meter key of charger=%s from its setMeterConfiguration", charger_id)
        return "Accepted"

    async def carried(self, charger_id: str, key: str) -> None:
        """The key a 2.0.1 station sent with a signed value: kept (the config's wins), and the station is
        not asked for it."""
        self._carried.add(charger_id)
        configured = self._configured(charger_id)
        if configured:
            if valid_public_key(configured) != key:
                log.warning("charger=%s signs with a meter key that is not the config's meter_public_key: the "
                            "config's is used", charger_id)
            return
        if self._known.get(charger_id) != key:
            await self.site.journal.write(Store.set_meter_key, charger_id, key, "signedMeterValue publicKey",
                                          self.site.clock.now_iso())
            self._known[charger_id] = key
            log.info("meter key of charger=%s from its signed meter value", charger_id)

    async def ask(self, charger_id: str) -> str | None:
        """The meter key as the station shows it: a 2.0.1 station's FiscalMetering.PublicKey, read through the
        StationControl (Setting.METER_PUBLIC_KEY, GetVariables); a 1.6 charger's configuration keys
        METER_KEY_NAMES, in one GetConfiguration."""
        if speaks_201(self.site.control, charger_id):
            return await self._ask_setting(charger_id)
        assert self.site.commands is not None
        result = await self.site.commands.send(charger_id, "GetConfiguration", {"key": list(METER_KEY_NAMES)},
                                               actor="edge", reason="the meter's public key, for signed meter values")
        found = result.response.get("configurationKey", []) if isinstance(result.response, dict) else []
        for item in found:
            key = valid_public_key(str(item.get("value") or ""))
            if key:
                if self._known.get(charger_id) != key:
                    await self.site.journal.write(Store.set_meter_key, charger_id, key,
                                                  f"GetConfiguration {item.get('key')}",
                                                  self.site.clock.now_iso())
                    self._known[charger_id] = key
                return key
        return None

    async def _ask_setting(self, charger_id: str) -> str | None:
        result = await self.site.control.read_settings(
            charger_id, [Setting.METER_PUBLIC_KEY], actor="edge",
            reason="the meter's public key, for signed meter values")
        key = meter_key_of((result.value or {}).get(Setting.METER_PUBLIC_KEY))
        if key is None:
            log.info("charger=%s shows no meter key (%s): its signed values stay unverifiable until it sends one "
                     "or the config has meter_public_key", charger_id, result.outcome)
            return None
        if self._known.get(charger_id) != key:
            await self.site.journal.write(Store.set_meter_key, charger_id, key, "GetVariables FiscalMetering.PublicKey",
                                          self.site.clock.now_iso())
            self._known[charger_id] = key
            log.info("meter key of charger=%s from its FiscalMetering.PublicKey", charger_id)
        return key
