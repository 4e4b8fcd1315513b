"""ID token spelling: every way an installer or a reader writes one RFID card
must find the same token; anything that is not a UID is refused with a message
that quotes what was typed."""

from __future__ import annotations

import pytest

from edge.auth.model import AuthModel, build_model
from edge.auth.tokens import MAX_ID_TAG, TokenError, canonical_id, canonical_uid, lookup_keys, reversed_uid


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("04A2B3C4", "04A2B3C4", id="already-canonical"),
        pytest.param("04:a2:b3:c4", "04A2B3C4", id="colons-lower-case"),
        pytest.param("04-A2-B3-C4", "04A2B3C4", id="dashes"),
        pytest.param("04.A2.B3.C4", "04A2B3C4", id="dots"),
        pytest.param("04 A2 B3 C4", "04A2B3C4", id="spaces"),
        pytest.param("  04a2b3c4\n", "04A2B3C4", id="surrounding-whitespace"),
        pytest.param("04\tA2:b3-C4", "04A2B3C4", id="mixed-separators"),
        pytest.param("04a2B3c4", "04A2B3C4", id="mixed-case"),
        pytest.param("04:A2:B3:C4:D5:E6:F7", "04A2B3C4D5E6F7", id="7-byte-uid"),
        pytest.param("0" * MAX_ID_TAG, "0" * MAX_ID_TAG, id="20-digits-is-the-limit"),
        pytest.param("ab", "AB", id="one-byte"),
    ],
)
def test_canonical_uid_accepts_every_spelling(text: str, expected: str) -> None:
    assert canonical_uid(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param(" : - . ", "empty", id="only-separators"),
        pytest.param("04A2B3C", "odd number", id="odd-digit-count"),
        pytest.param("4:A2", "odd number", id="odd-digit-count-with-separators"),
        pytest.param("04G2B3C4", "not hex", id="non-hex-letter"),
        pytest.param("04_A2_B3_C4", "not hex", id="underscore-is-not-a-separator"),
        pytest.param("0x04A2B3C4", "not hex", id="0x-prefix"),
        pytest.param("04A2B3C4é5", "not hex", id="non-ascii"),
        pytest.param("٠٤A2", "not hex", id="arabic-indic-digits"),
        pytest.param("0" * (MAX_ID_TAG + 2), "at most 20", id="22-digits-too-long"),
        pytest.param(":".join(["AB"] * 11), "at most 20", id="11-bytes-with-colons-too-long"),
    ],
)
def test_canonical_uid_refuses_with_a_message_naming_the_input(text: str, problem: str) -> None:
    with pytest.raises(TokenError) as error:
        canonical_uid(text)
    message = str(error.value)
    assert repr(text) in message, message
    assert problem in message, message


@pytest.mark.parametrize(
    ("uid", "expected"),
    [
        pytest.param("04A2B3C4", "C4B3A204", id="4-bytes"),
        pytest.param("04A2B3C4D5E6F7", "F7E6D5C4B3A204", id="7-bytes"),
        pytest.param("AB", "AB", id="one-byte"),
        pytest.param("0440", "4004", id="bytes-not-nibbles"),
        pytest.param("", "", id="empty"),
    ],
)
def test_reversed_uid_reverses_whole_bytes(uid: str, expected: str) -> None:
    assert reversed_uid(uid) == expected
    assert reversed_uid(reversed_uid(uid)) == uid


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("app-user-17", "APP-USER-17", id="lower-case"),
        pytest.param("  REMOTE1 ", "REMOTE1", id="surrounding-whitespace"),
        pytest.param("A" * MAX_ID_TAG, "A" * MAX_ID_TAG, id="20-characters"),
        pytest.param("user@example", "USER@EXAMPLE", id="printable-punctuation"),
    ],
)
def test_canonical_id_is_case_insensitive(text: str, expected: str) -> None:
    assert canonical_id(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("   ", "empty", id="blank"),
        pytest.param("A" * (MAX_ID_TAG + 1), "at most 20", id="21-characters"),
        pytest.param("käse", "printable ASCII", id="non-ascii"),
        pytest.param("TAB\tINSIDE", "printable ASCII", id="control-character"),
    ],
)
def test_canonical_id_refuses(text: str, problem: str) -> None:
    with pytest.raises(TokenError) as error:
        canonical_id(text)
    message = str(error.value)
    assert problem in message, message
    if text.strip():
        assert repr(text) in message, message


@pytest.mark.parametrize(
    ("presented", "expected"),
    [
        pytest.param("04A2B3C4", ["04A2B3C4", "C4B3A204"], id="canonical-uid"),
        pytest.param("04:a2:b3:c4", ["04:A2:B3:C4", "04A2B3C4", "C4B3A204"], id="colons-exact-spelling-first"),
        pytest.param(" c4b3a204 ", ["C4B3A204", "04A2B3C4"], id="reversed-and-padded"),
        pytest.param("app-user-17", ["APP-USER-17"], id="opaque-id-only-itself"),
        pytest.param("04A2B3C", ["04A2B3C"], id="odd-hex-no-uid-keys"),
        pytest.param("AB", ["AB"], id="palindrome-byte-once"),
        pytest.param("", [], id="empty"),
        pytest.param("  ", [], id="blank"),
    ],
)
def test_lookup_keys(presented: str, expected: list[str]) -> None:
    assert lookup_keys(presented) == expected


def _model(*tokens: dict) -> AuthModel:
    return build_model(1, tokens=tokens, user_groups=[{"id": "tenants"}], charge_groups=[])


@pytest.mark.parametrize(
    "presented",
    [
        pytest.param("04A2B3C4", id="canonical"),
        pytest.param("04a2b3c4", id="lower-case"),
        pytest.param("c4b3a204", id="reversed-bytes-lower"),
        pytest.param("C4:B3:A2:04", id="reversed-bytes-colons"),
        pytest.param("04-A2-B3-C4", id="dashes"),
        pytest.param("04 A2 B3 C4", id="spaces"),
        pytest.param("04:a2:b3:c4", id="as-entered"),
    ],
)
def test_find_matches_a_card_entered_with_colons_in_any_spelling(presented: str) -> None:
    model = _model({"uid": "04:a2:b3:c4", "user_group": "tenants", "user": "alice"})
    token = model.find(presented)
    assert token is not None
    assert token.user == "alice"
    assert token.id_tag == "04A2B3C4"
    assert token.is_uid


def test_find_matches_a_card_entered_in_reversed_byte_order() -> None:
    model = _model({"uid": "C4-B3-A2-04", "user_group": "tenants", "user": "bob"})
    for presented in ("C4B3A204", "04A2B3C4", "04:a2:b3:c4"):
        token = model.find(presented)
        assert token is not None and token.user == "bob", presented


@pytest.mark.parametrize(
    "presented",
    [
        pytest.param("04A2B3C5", id="one-digit-off"),
        pytest.param("04A2B3", id="prefix"),
        pytest.param("04A2B3C4D5", id="longer"),
        pytest.param("A204C4B3", id="other-permutation"),
        pytest.param("", id="empty"),
    ],
)
def test_find_does_not_match_other_cards(presented: str) -> None:
    model = _model({"uid": "04:a2:b3:c4", "user_group": "tenants"})
    assert model.find(presented) is None


def test_find_matches_an_opaque_id_case_insensitively() -> None:
    model = _model({"id_tag": "App-User-17", "user_group": "tenants", "user": "carol"})
    token = model.find("app-user-17")
    assert token is not None and token.user == "carol" and not token.is_uid


def test_find_does_not_reverse_an_opaque_id_tag() -> None:
    """Byte reversal is for RFID readers that report a UID back to front. An
    opaque id (an app user, a remote-start id) is a CiString: only its case is
    insignificant. A numeric app id "12345678" must not be matched by the
    different id tag "78563412" (nor "12:34:56:78"), or that tag charges (and is billed) as the
    app user."""
    model = _model({"id_tag": "12345678", "user_group": "tenants", "user": "app-user"})
    assert model.find("12345678") is not None
    assert model.find(" 12345678 ") is not None
    assert model.find("78563412") is None
    assert model.find("12:34:56:78") is None
    assert model.find("78-56-34-12") is None
