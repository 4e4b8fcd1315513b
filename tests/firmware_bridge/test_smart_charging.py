"""The bridge's charging profiles around a transaction's start: the edge, which answers the
StartTransaction, can send the TxProfile for it before that answer reaches the bridge."""

from __future__ import annotations

from datetime import datetime, timezone

from firmware_bridge.smart_charging import ChargingProfiles
from firmware_bridge.store import Store

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def tx_profile(profile_id: int, transaction_id: int | None) -> dict:
    """As the ocpp library hands it to the handler (snake_case)."""
    return {"charging_profile_id": profile_id, "stack_level": 1, "charging_profile_purpose": "TxProfile",
            "charging_profile_kind": "Relative", **({"transaction_id": transaction_id} if transaction_id else {}),
            "charging_schedule": {"charging_rate_unit": "A",
                                  "charging_schedule_period": [{"start_period": 0, "limit": 10}]}}


def test_a_tx_profile_before_the_transaction_id_is_taken_and_kept_once_the_id_matches(tmp_path) -> None:
    profiles = ChargingProfiles(Store(tmp_path / "bridge.sqlite"))
    # The StartTransaction is in flight: the transaction runs, its id is not known yet.
    assert profiles.install(1, tx_profile(101, 777), received=NOW, transaction_id=None, in_transaction=True) \
        == "Accepted"
    profiles.for_transaction(777)
    assert [i.profile.id for i in profiles.installed] == [101]


def test_a_tx_profile_taken_early_for_another_transaction_goes_when_the_id_arrives(tmp_path) -> None:
    profiles = ChargingProfiles(Store(tmp_path / "bridge.sqlite"))
    profiles.install(1, tx_profile(101, 776), received=NOW, transaction_id=None, in_transaction=True)
    profiles.for_transaction(777)
    assert profiles.installed == []
    assert ChargingProfiles(Store(tmp_path / "bridge.sqlite")).installed == []   # and from the store


def test_with_the_id_known_a_profile_for_another_transaction_is_still_rejected(tmp_path) -> None:
    profiles = ChargingProfiles(Store(tmp_path / "bridge.sqlite"))
    assert profiles.install(1, tx_profile(101, 776), received=NOW, transaction_id=777, in_transaction=True) \
        == "Rejected"
    assert profiles.install(1, tx_profile(101, None), received=NOW, transaction_id=None, in_transaction=False) \
        == "Rejected"
