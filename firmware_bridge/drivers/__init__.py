"""Wallbox drivers, one module per serial protocol, found by name.

Adding a protocol: a module that implements `base.WallboxDriver`, decorated
with `@base.register("name")`, imported below.
"""

from firmware_bridge.drivers import rapi  # noqa: F401  (registers "rapi")
from firmware_bridge.drivers.base import create, names

__all__ = ["create", "names"]
