"""The downlink's boundary (contract.v1): whatever a message holds, it is either a Down that both
sides can store and answer, or a ContractError naming what is wrong; never anything else."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from contract.v1 import INT64, MAX_VERSION, Ack, ContractError, Down, document_problem, encode, parse

TOPIC = "sc/v1/sites/site-a/down/auth"
json_values = st.recursive(st.none() | st.booleans() | st.integers(min_value=-2**80, max_value=2**80) |
                           st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=4),
                           max_leaves=30)


def ints(value):
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from ints(item)
    elif isinstance(value, list):
        for item in value:
            yield from ints(item)


@settings(max_examples=200, deadline=None)
@given(version=st.one_of(st.none(), st.integers(min_value=-2**70, max_value=2**70), st.text(max_size=5)),
       message_id=st.text(max_size=70), document=st.dictionaries(st.text(max_size=8), json_values, max_size=4))
def test_a_down_message_is_storable_or_refused_by_name(version, message_id, document):
    payload = json.dumps({"v": 1, "site": "site-a", "kind": "auth", "id": message_id, "version": version,
                          "document": document}).encode()
    try:
        down = parse(TOPIC, payload)
    except ContractError as exc:
        assert str(exc).startswith(TOPIC) and exc.reason == "schema"
        return
    assert isinstance(down, Down) and (down.version is None or 1 <= down.version <= MAX_VERSION)
    assert document_problem(down.document) is None
    assert all(INT64[0] <= n <= INT64[1] for n in ints(down.document))
    encode(Ack(site="site-a", kind="auth", id=down.id, version=down.version, status="applied"))  # answerable


def test_a_version_beyond_the_range_is_named_with_its_value():
    payload = json.dumps({"v": 1, "site": "site-a", "kind": "auth", "id": "x", "version": 2**63,
                          "document": {}}).encode()
    try:
        parse(TOPIC, payload)
    except ContractError as exc:
        assert "version" in str(exc) and str(2**63) in str(exc)
    else:
        raise AssertionError("2**63 was taken as a version")
