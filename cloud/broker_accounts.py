"""The broker's accounts: who may connect, with which client id, and what each may publish,
receive and subscribe to. Mosquitto's dynamic-security plugin enforces it
(config/mosquitto/mosquitto.conf); this module writes its JSON file.

Why the plugin and not an acl_file: Mosquitto 2.0's acl_file never refuses a SUBSCRIBE (it only
filters what is delivered), so a site could join the cloud's shared subscription
(`$share/cloud/sc/v1/sites/+/up/+`) and take its turn of every site's messages, which the broker then
drops; and nothing ties a client id to a username, so a site could connect with another's client id
and take over its session. The plugin checks subscriptions (the full filter, `$share/...` included)
and binds each site's username to its own client id.

Each site: username and client id = its site id, one role that may publish only its own up/+, state
and ack, and receive and subscribe to only its own down/+. The cloud: its own username, any client
id (several instances share the load), may subscribe shared to every site's up, ack and state, and
plainly to every site's state (one instance reads the retained states after nobody was subscribed:
cloud/brokers.py), and publish every site's down. Everything else is denied.

    python -m cloud.broker_accounts /var/lib/mosquitto/dynamic-security.json site demo-flats [password]
    python -m cloud.broker_accounts /var/lib/mosquitto/dynamic-security.json cloud cloud [password]
    python -m cloud.broker_accounts /var/lib/mosquitto/dynamic-security.json remove demo-flats

then restart the broker (systemctl restart mosquitto): the plugin reads the file when it starts.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from contract.v1 import PREFIX, SITE_ID

# As `mosquitto_ctrl dynsec` makes them: PBKDF2-HMAC-SHA512, a 12-byte salt.
ITERATIONS = 101
CLOUD_ROLE = "cloud"
# The cloud's instances connect as cloud-1, cloud-2, ...: no site may be called so.
RESERVED_PREFIX = "cloud"
# Nothing is allowed unless a role says so.
DENY_ALL = {"publishClientSend": False, "publishClientReceive": False, "subscribe": False, "unsubscribe": False}


def empty() -> dict[str, Any]:
    return {"clients": [], "roles": [], "groups": [], "defaultACLAccess": dict(DENY_ALL)}


def _acl(acltype: str, topic: str) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "allow": True}


def site_role(site: str) -> dict[str, Any]:
    own = f"{PREFIX}/sites/{site}"
    return {"rolename": f"site:{site}", "acls": [
        _acl("publishClientSend", f"{own}/up/+"), _acl("publishClientSend", f"{own}/state"),
        _acl("publishClientSend", f"{own}/ack"),
        _acl("publishClientReceive", f"{own}/down/+"), _acl("subscribePattern", f"{own}/down/+"),
        _acl("unsubscribePattern", f"{own}/down/+")]}


def cloud_role() -> dict[str, Any]:
    every = f"{PREFIX}/sites/+"
    acls = [_acl("publishClientSend", f"{every}/down/+")]
    for topic, unshared in ((f"{every}/up/+", False), (f"{every}/ack", False), (f"{every}/state", True)):
        acls.append(_acl("publishClientReceive", topic))
        for pattern in (f"$share/+/{topic}", topic) if unshared else (f"$share/+/{topic}",):
            acls += [_acl("subscribePattern", pattern), _acl("unsubscribePattern", pattern)]
    return {"rolename": CLOUD_ROLE, "acls": acls}


def password_entry(password: str, salt: bytes | None = None) -> dict[str, Any]:
    salt = salt or os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS, 64)
    return {"password": base64.b64encode(digest).decode(), "salt": base64.b64encode(salt).decode(),
            "iterations": ITERATIONS}


def check_site_id(site: str) -> str:
    if not SITE_ID.match(site) or site in (".", ".."):
        raise ValueError(f"{site!r} is not a site id (1-64 of A-Z a-z 0-9 . _ -)")
    if site.casefold().startswith(RESERVED_PREFIX):
        raise ValueError(f"{site!r}: site ids starting with {RESERVED_PREFIX!r} are reserved for the cloud's "
                         "own accounts and client ids")
    return site


def _without(config: dict[str, Any], username: str, rolename: str) -> dict[str, Any]:
    return {**config, "clients": [c for c in config.get("clients", []) if c["username"] != username],
            "roles": [r for r in config.get("roles", []) if r["rolename"] != rolename]}


def _site_account(site: str, password: str, salt: bytes | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A site's client entry and its role: its username bound to client id `site`."""
    role = site_role(check_site_id(site))
    return ({"username": site, "clientid": site, "textName": f"site {site}", **password_entry(password, salt),
             "roles": [{"rolename": role["rolename"]}]}, role)


def with_site(config: dict[str, Any], site: str, password: str, salt: bytes | None = None) -> dict[str, Any]:
    """The accounts with `site` added (or its password changed)."""
    client, role = _site_account(site, password, salt)
    out = _without(config, site, role["rolename"])
    out["clients"].append(client)
    out["roles"].append(role)
    return out


def with_cloud(config: dict[str, Any], username: str, password: str, salt: bytes | None = None) -> dict[str, Any]:
    """The accounts with the cloud service's user (any client id: its instances share subscriptions)."""
    if not username.casefold().startswith(RESERVED_PREFIX):
        raise ValueError(f"{username!r}: the cloud's username must start with {RESERVED_PREFIX!r} (no site can)")
    out = _without(config, username, "")
    out["clients"].append({"username": username, "textName": "the cloud service", **password_entry(password, salt),
                           "roles": [{"rolename": CLOUD_ROLE}]})
    out["roles"] = [r for r in out["roles"] if r["rolename"] != CLOUD_ROLE] + [cloud_role()]
    return out


def without_site(config: dict[str, Any], site: str) -> dict[str, Any]:
    return _without(config, site, f"site:{site}")


def accounts(sites: dict[str, str], clouds: dict[str, str]) -> dict[str, Any]:
    """A whole file: site id -> password, cloud username -> password."""
    config = empty()
    # In one pass (the ids are a dict's keys, so unique): adding each through with_site copies the
    # lists every time, which took about 15 s for 10,000 sites.
    for site, password in sites.items():
        client, role = _site_account(site, password, None)
        config["clients"].append(client)
        config["roles"].append(role)
    for user, password in clouds.items():
        config = with_cloud(config, user, password)
    return config


def write(path: Path, config: dict[str, Any]) -> None:
    """Atomically, readable by its owner only (it holds password hashes)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cloud.broker_accounts", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path, help="the plugin's JSON file (plugin_opt_config_file)")
    parser.add_argument("what", choices=("site", "cloud", "remove"))
    parser.add_argument("name", help="the site id, or the cloud's username")
    parser.add_argument("password", nargs="?", help="default: a new random one, printed")
    args = parser.parse_args(argv)
    config = json.loads(args.file.read_text(encoding="utf-8")) if args.file.exists() else empty()
    password = args.password or secrets.token_urlsafe(24)
    try:
        if args.what == "site":
            config = with_site(config, args.name, password)
        elif args.what == "cloud":
            config = with_cloud(config, args.name, password)
        else:
            config = without_site(config, args.name)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write(args.file, config)
    if args.what != "remove":
        print(f"{args.what} {args.name}: password {password}")
    print(f"{args.file}: written; restart the broker to apply it (systemctl restart mosquitto)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
