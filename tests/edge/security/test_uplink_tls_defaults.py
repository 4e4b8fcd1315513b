"""The uplink's TLS defaults match its promises (issue 17 item 4): on at 8883, verification always on."""

from __future__ import annotations

import ssl

import pytest

from edge.config import ConfigError, parse_config
from edge.uplink.mqtt import LinkSettings, tls_context

BASE = '[site]\nid = "s"\n[uplink]\nenabled = true\nhost = "mqtt.example.net"\n'


def uplink(extra: str = ""):
    return parse_config(BASE + extra, "t.toml").uplink


def test_tls_is_on_by_default_at_8883_and_off_at_1883():
    assert uplink().port == 8883 and uplink().use_tls
    assert not uplink("port = 1883\n").use_tls
    assert uplink("port = 1883\ntls = true\n").use_tls
    assert uplink('port = 1883\nca_file = "ca.pem"\n').use_tls


@pytest.mark.parametrize("extra, words", [("tls = false\n", "tls = false at port 8883"),
                                          ('port = 1883\ntls = false\nca_file = "ca.pem"\n', "TLS settings")])
def test_contradictions_are_refused_with_the_key_named(extra, words):
    with pytest.raises(ConfigError) as err:
        uplink(extra)
    assert "uplink" in str(err.value) and words in str(err.value)


def test_the_broker_certificate_and_name_are_always_verified():
    settings = LinkSettings(host="h", port=8883, client_id="s", username="s", password=None, protocol="5",
                            keepalive=60, session_expiry=0, tls=True, ca_file=None, cert_file=None, key_file=None,
                            max_inflight=4, will_topic="t", will_payload=b"")
    context = tls_context(settings)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
