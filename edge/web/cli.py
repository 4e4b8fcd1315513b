"""edgectl web: the installer's web page. `edgectl web password` sets the password the page asks for."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Callable

from edge import ctl

MIN_LENGTH = 8


def register(sub: argparse._SubParsersAction, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
             ) -> None:
    p = with_config(sub.add_parser("web", help="the installer's web page: set its password"))
    p.add_argument("action", choices=("password",),
                   help="password: set the installer's password (asked twice, or one line on stdin); kept hashed "
                        "in the state directory, used from the next login on")
    p.set_defaults(func=cmd_web)


def _read_password() -> str:
    if sys.stdin.isatty():
        password = getpass.getpass("installer password: ")
        if getpass.getpass("again: ") != password:
            raise ctl.CliError("the passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < MIN_LENGTH:
        raise ctl.CliError(f"the installer password needs at least {MIN_LENGTH} characters")
    return password


def cmd_web(args: argparse.Namespace) -> int:
    from edge.ocpp.security import hash_password
    from edge.web.page.logins import PASSWORD_FILE, write_password_hash

    config = ctl.reach_config(args)
    password = _read_password()
    try:
        stored = hash_password(password)
    except ValueError as exc:
        raise ctl.CliError(str(exc)) from None
    path = config.state_path(PASSWORD_FILE)
    try:
        write_password_hash(path, stored)
        owner = path.parent.stat()
        if os.geteuid() == 0 and owner.st_uid != 0:
            os.chown(path, owner.st_uid, owner.st_gid)   # run as root: the edge's user must read it
    except OSError as exc:
        raise ctl.CliError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"installer password set (kept hashed in {path}); the web page asks for it from the next login on")
    return 0
