"""edgectl ca: the site's certificates for OCPP security profiles 2 and 3 (docs/security.md).

- `edgectl ca init`: a site CA in the state directory (tls/ca.pem, tls/ca.key; the key mode 0600).
- `edgectl ca server-cert NAME_OR_ADDRESS...`: the edge's server certificate for the names and
  addresses chargers connect to (tls/server.pem, tls/server.key): what [ocpp.tls] serves. Written
  next to the old files and moved into place, so the running edge picks it up whole (reload_every).
- `edgectl ca charger-cert CP-1 [--out DIR]`: a client certificate and key for a charger that
  cannot make a CSR itself, to install by hand.
- `edgectl ca show FILE`: a certificate as an installer reads it (names, dates, fingerprint).
- `edgectl ca status`: from the running edge: wss:// served, each charger's configured profile and
  the level it was seen at (with its client certificate), the latest refused TLS handshakes.
- `edgectl ca reload`: the running edge reads its TLS files now.

`edgectl security ...`: the whitepaper's messages (docs/security.md): `certs`/`install`/`delete` a charger's
CA store (GetInstalledCertificateIds, InstallCertificate, DeleteCertificate), `trigger` (ExtendedTriggerMessage),
`renew` and `issued` (client certificates through SignCertificate), `getlog` and `logs` (GetLog, uploads),
`firmware` (SignedUpdateFirmware, the signature checked first), `rotate` (every charger, with progress).

Moving a charger up (1 -> 2 -> 3) is `edgectl security upgrade CP-1 --profile 2 [--reason ...]` (POST
/api/v1/chargers/{id}/security-profile): for a 1.6 charger a ChangeConfiguration(SecurityProfile), which the edge
sends only after it saw the charger connect at that level (edge/ocpp/security_state.py); for an OCPP 2.0.1
station A05's SetNetworkProfile, NetworkConfigurationPriority and Reset (edge/ocpp/v201/security.py).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Callable

from edge.ocpp import certificates
from edge import ctl


def register(sub: argparse._SubParsersAction, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
             ) -> None:
    p = with_config(sub.add_parser("ca", help="certificates for wss:// (security profiles 2 and 3): site CA, "
                                              "server and charger certificates, what chargers connect with"))
    p.add_argument("action", choices=("init", "server-cert", "charger-cert", "show", "status", "reload"))
    p.add_argument("names", nargs="*", help="server-cert: the names and addresses chargers reach the edge by "
                                            "(the first is the commonName); charger-cert: the charge point id; "
                                            "show: a PEM file")
    p.add_argument("--name", default="", help="init: the CA's name (default: the site id)")
    p.add_argument("--days", type=int, help="validity (default: CA 10 years, others 2 years)")
    p.add_argument("--rsa", action="store_true", help="RSA 2048 instead of ECDSA P-256 (for chargers that only "
                                                      "speak the TLS_RSA suites)")
    p.add_argument("--out", help="charger-cert: where to write CP.pem and CP.key (default: the state's tls/)")
    p.add_argument("--force", action="store_true", help="init: replace an existing CA (every certificate it "
                                                        "signed stops being trusted)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ca)

    p = with_config(sub.add_parser("security", help="the OCPP 1.6 security messages: chargers' CA stores, "
                                                    "renewal, logs, signed firmware, site-wide rotation"))
    p.add_argument("action", choices=("certs", "install", "delete", "trigger", "renew", "issued", "getlog", "logs",
                                      "firmware", "rotate", "upgrade"))
    p.add_argument("charger", nargs="?", help="the charge point id (not for issued, logs, rotate)")
    p.add_argument("file", nargs="?", help="install/delete: a PEM certificate; firmware: the firmware file; "
                                           "trigger: the requested message (e.g. SignChargePointCertificate)")
    p.add_argument("--type", help="certs/install: CentralSystemRootCertificate (default) or "
                                  "ManufacturerRootCertificate; getlog: SecurityLog (default) or DiagnosticsLog")
    p.add_argument("--connector", type=int, help="trigger: the connector")
    p.add_argument("--profile", type=int, help="upgrade: the security profile to move the charger to (1, 2, 3)")
    p.add_argument("--base-url", help="getlog/firmware: where chargers upload and download (default: the edge's "
                                      "HTTPS port for a charger on wss://, else the address edgectl uses)")
    p.add_argument("--signing-cert", help="firmware: the manufacturer's signing certificate (PEM)")
    p.add_argument("--signature", help="firmware: the Base64 signature of the file")
    p.add_argument("--sign-with", help="firmware: sign the file with this private key (PEM) instead")
    p.add_argument("--manufacturer-root", help="firmware: the manufacturer's root CA (PEM) the signing certificate "
                                               "must chain to (default: tls/manufacturer-roots.pem in the state "
                                               "directory)")
    p.add_argument("--get", type=int, metavar="REQUEST_ID", help="logs: download this request's file")
    p.add_argument("--output", "-o", help="logs --get: where to write it (default: stdout)")
    p.add_argument("--kinds", default="certificate", help="rotate: certificate, password or both (comma-separated)")
    p.add_argument("--status", action="store_true", help="rotate: the latest rotation's progress")
    p.add_argument("--wait", action="store_true", help="rotate: follow the progress until it is finished")
    p.add_argument("--reason", default="", help="kept in the actions log")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_security)


def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    """Written beside and renamed into place: the edge's reload never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".new")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)


def cmd_ca(args: argparse.Namespace) -> int:
    config = ctl.reach_config(args)
    tls = config.ocpp.tls
    if tls is None:
        from edge.config import OcppTlsSection
        tls = OcppTlsSection()
    ca_pem_path, server_pem, server_key = (config.state_path(tls.ca), config.state_path(tls.certificate),
                                           config.state_path(tls.key))
    ca_key_path = ca_pem_path.with_suffix(".key")
    now = certificates.utcnow()
    days = {"days": args.days} if args.days else {}
    if args.action == "init":
        if ca_pem_path.exists() and not args.force:
            raise ctl.CliError(f"{ca_pem_path} exists: a new CA would make every certificate it signed untrusted "
                               "(--force if that is what you want)")
        issued = certificates.make_ca(args.name or f"{config.site.id} site CA", now=now, rsa=args.rsa, **days)
        _write(ca_key_path, issued.key or b"", secret=True)
        _write(ca_pem_path, issued.certificate)
        print(f"site CA written: {ca_pem_path} (key {ca_key_path}, keep it there and back it up)")
        return _show(certificates.describe(issued.certificate, now=now), args.json)
    if args.action in ("server-cert", "charger-cert"):
        if not args.names:
            raise ctl.CliError(f"{args.action}: give " + ("the names and addresses chargers reach the edge by"
                                                          if args.action == "server-cert" else "the charge point id"))
        try:
            ca_pem, ca_key = ca_pem_path.read_bytes(), ca_key_path.read_bytes()
        except OSError as exc:
            raise ctl.CliError(f"cannot read the site CA ({exc.strerror}: {exc.filename}); "
                               "make it with `edgectl ca init`") from None
        try:
            if args.action == "server-cert":
                issued = certificates.make_server_certificate(ca_pem, ca_key, args.names, now=now, rsa=args.rsa,
                                                              **days)
                cert_path, key_path = server_pem, server_key
            else:
                issued = certificates.make_charger_certificate(ca_pem, ca_key, args.names[0], now=now,
                                                               rsa=args.rsa, **days)
                out = Path(args.out) if args.out else ca_pem_path.parent
                cert_path, key_path = out / f"{args.names[0]}.pem", out / f"{args.names[0]}.key"
        except certificates.CertificateError as exc:
            raise ctl.CliError(str(exc)) from None
        _write(key_path, issued.key or b"", secret=True)
        _write(cert_path, issued.certificate)
        print(f"written: {cert_path} and {key_path}")
        return _show(certificates.describe(issued.certificate, now=now), args.json)
    if args.action == "show":
        if not args.names:
            raise ctl.CliError("show: give a PEM file")
        try:
            return _show(certificates.describe(Path(args.names[0]).read_bytes(), now=now), args.json)
        except OSError as exc:
            raise ctl.CliError(f"cannot read {args.names[0]}: {exc.strerror}") from None
        except certificates.CertificateError as exc:
            raise ctl.CliError(f"{args.names[0]}: {exc}") from None
    client = ctl.ApiClient(config)
    if args.action == "reload":
        result = client.request("POST", "/security/reload")
        print(json.dumps(result, indent=2) if args.json else
              ("new TLS files served" if result.get("reloaded") else "no change in the TLS files"))
        return 0
    body = client.request("GET", "/security")
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    print(render(body))
    return 0


def _show(view: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(view, indent=2))
    else:
        for key, value in view.items():
            print(f"  {key:<12} {', '.join(value) if isinstance(value, list) else value}")
    return 0


def render(body: dict[str, Any]) -> str:
    tls = body.get("tls")
    lines = [f"wss:// on port {tls['port']} ({tls['certificate']}, {tls['reloads']} reloads)"
             + (f"; LAST RELOAD FAILED: {tls['last_error']}" if tls.get("last_error") else "")
             if tls else "wss:// not served (no [ocpp.tls]): profiles 0 and 1 only"]
    rows = [{"charger": c["charger_id"], "profile": c["security_profile"], "connected": c["connected"],
             **({"seen_level": c["seen"]["level"], "last_level": c["seen"]["last_level"],
                 "last_at": c["seen"]["last_at"], "tls": c["seen"]["tls_version"],
                 "certificate": c["seen"]["cert_subject"], "cert_until": c["seen"]["cert_not_after"]}
                if c["seen"] else {})} for c in body["chargers"]]
    lines += ["", ctl.table(rows, ["charger", "profile", "connected", "seen_level", "last_level", "last_at", "tls",
                                    "certificate", "cert_until"])]
    if body.get("tls_refused"):
        lines += ["", "refused TLS handshakes (newest last):",
                  ctl.table(body["tls_refused"], ["at", "address", "charger_id", "reason"])]
    if body.get("security_events"):
        lines += ["", "security events the chargers reported (newest first; critical ones are alerted):",
                  ctl.table(body["security_events"][:20], ["at", "charger_id", "type", "critical", "tech_info"])]
    return "\n".join(lines)


def cmd_security(args: argparse.Namespace) -> int:
    import time
    import urllib.parse
    from edge.ocpp.security_messages import hash_data

    client = ctl.ApiClient(ctl.reach_config(args), timeout=120)
    reason = args.reason or f"edgectl security {args.action}"
    needs_charger = args.action not in ("issued", "logs", "rotate")
    if needs_charger and not args.charger:
        raise ctl.CliError(f"security {args.action}: give the charge point id")
    charger = urllib.parse.quote(args.charger or "")

    def command(action: str, params: dict[str, Any]) -> int:
        result = client.request("POST", f"/chargers/{charger}/commands/{action}",
                                body={"params": params, "reason": reason})
        print(json.dumps(result, indent=2))
        return 0 if result.get("outcome") in ("ok", "rejected") else 1

    def pem(path: str | None) -> str:
        if not path:
            raise ctl.CliError(f"security {args.action}: give a PEM certificate file")
        try:
            return Path(path).read_text()
        except OSError as exc:
            raise ctl.CliError(f"cannot read {path}: {exc.strerror}") from None

    if args.action == "certs":
        return command("GetInstalledCertificateIds", {"certificateType": args.type or "CentralSystemRootCertificate"})
    if args.action == "install":
        return command("InstallCertificate", {"certificateType": args.type or "CentralSystemRootCertificate",
                                              "certificate": pem(args.file)})
    if args.action == "delete":
        try:
            hashed = hash_data(pem(args.file).encode())
        except ValueError as exc:
            raise ctl.CliError(f"{args.file}: not a PEM certificate ({exc})") from None
        return command("DeleteCertificate", {"certificateHashData": hashed})
    if args.action == "trigger":
        if not args.file:
            raise ctl.CliError("security trigger: give the message, e.g. SignChargePointCertificate")
        params: dict[str, Any] = {"requestedMessage": args.file}
        if args.connector is not None:
            params["connectorId"] = args.connector
        return command("ExtendedTriggerMessage", params)
    if args.action == "upgrade":
        if args.profile is None:
            raise ctl.CliError("security upgrade: give --profile N (1, 2 or 3)")
        body = {"profile": args.profile, "reason": args.reason or f"edgectl security upgrade --profile {args.profile}"}
        result = client.request("POST", f"/chargers/{charger}/security-profile", body=body)
        print(json.dumps(result, indent=2))
        return 0 if result.get("outcome") == "ok" else 1
    if args.action == "renew":
        print(json.dumps(client.request("POST", f"/security/chargers/{charger}/renew"), indent=2))
        return 0
    if args.action == "issued":
        rows = client.request("GET", "/security/certificates", query={"charger": args.charger})
        print(json.dumps(rows, indent=2) if args.json else
              ctl.table(rows, ["issued_at", "charger_id", "serial", "not_after", "answer"]))
        return 0
    if args.action == "getlog":
        body = {"log_type": args.type or "SecurityLog", "base_url": args.base_url, "reason": reason}
        print(json.dumps(client.request("POST", f"/security/chargers/{charger}/logs", body=body), indent=2))
        return 0
    if args.action == "logs":
        if args.get is not None:
            data = client.request("GET", f"/security/logs/{args.get}/file", raw=True)
            if args.output:
                Path(args.output).write_text(data)
            else:
                print(data, end="")
            return 0
        rows = client.request("GET", "/security/logs", query={"charger": args.charger})
        print(json.dumps(rows, indent=2) if args.json else ctl.table(
            rows, ["request_id", "charger_id", "log_type", "requested_at", "status", "file_name", "size"]))
        return 0
    if args.action == "firmware":
        return _firmware(args, client, charger, reason)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    state = (client.request("GET", "/security/rotate") if args.status else
             client.request("POST", "/security/rotate", body={"kinds": kinds}))
    while True:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(state.get("counts", {}).items()))
        print(f"rotation {state.get('rotation_id')}: {counts or 'nothing to do'}"
              + (" (finished)" if state.get("finished") else ""))
        if not args.wait or state.get("finished", True):
            break
        time.sleep(2)
        state = client.request("GET", "/security/rotate")
    if args.json:
        print(json.dumps(state, indent=2))
    elif state.get("steps"):
        print(ctl.table(state["steps"], ["charger_id", "kind", "state", "detail", "at"]))
    return 0


def _firmware(args: argparse.Namespace, client: Any, charger: str, reason: str) -> int:
    if not args.file or not args.signing_cert:
        raise ctl.CliError("security firmware: give the firmware file and --signing-cert")
    firmware = Path(args.file).resolve()
    signature = args.signature
    if args.sign_with:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        from edge.ocpp.firmware import sign_firmware
        signature = sign_firmware(firmware.read_bytes(), load_pem_private_key(Path(args.sign_with).read_bytes(), None))
    if not signature:
        raise ctl.CliError("security firmware: give --signature (Base64) or --sign-with KEY")
    body = {"path": str(firmware), "signing_certificate": Path(args.signing_cert).read_text(),
            "signature": signature, "base_url": args.base_url, "reason": reason,
            "manufacturer_root": Path(args.manufacturer_root).read_text() if args.manufacturer_root else None}
    result = client.request("POST", f"/security/chargers/{charger}/firmware", body=body)
    print(json.dumps(result, indent=2))
    return 0 if result.get("outcome") in ("ok", "rejected") else 1
