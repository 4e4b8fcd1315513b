"""The simulated charger's side of OCPP security profiles 2 and 3: a TLS client context.

Profile 2: it trusts the site CA (the whitepaper's CentralSystemRootCertificate) and sends its
password with HTTP Basic inside TLS. Profile 3: it also presents its client certificate.
`versions` lets a test play a charger stuck on TLS 1.1, which the edge must refuse.
"""

from __future__ import annotations

import ssl
import warnings
from pathlib import Path


def client_context(ca: str | Path | None = None, *, certificate: str | Path | None = None,
                   key: str | Path | None = None, ca_data: str | None = None,
                   versions: tuple[ssl.TLSVersion, ssl.TLSVersion] | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca is not None or ca_data is not None:
        ctx.load_verify_locations(cafile=str(ca) if ca is not None else None, cadata=ca_data)
    if certificate is not None:
        ctx.load_cert_chain(str(certificate), str(key) if key is not None else None)
    if versions is not None:
        if versions[1] < ssl.TLSVersion.TLSv1_2:
            # OpenSSL 3 refuses TLS 1.1 at its default security level: an old charger's stack does not.
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():     # TLS 1.1 is deprecated: that is what the test plays
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version, ctx.maximum_version = versions
    return ctx
