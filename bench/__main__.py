"""`python -m bench NAME [args]`: run the benchmark in bench/NAME.py.

Each benchmark module has a `main(argv) -> int`; this runner only finds it,
so adding a benchmark is adding a module.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

# Modules under bench/ that are helpers, not benchmarks.
HELPERS = {"cloud_fleet", "fleet_sites", "measure", "servers", "dlm_bound", "dlm_compute", "dlm_day", "dlm_reaction"}


def benchmarks() -> list[str]:
    folder = str(Path(__file__).parent)
    return sorted(m.name for m in pkgutil.iter_modules([folder])
                  if not m.name.startswith("_") and m.name not in HELPERS)


def main(argv: list[str]) -> int:
    available = benchmarks()
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: python -m bench NAME [args]   (NAME: {', '.join(available)})", file=sys.stderr)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in available:
        print(f"bench: no benchmark {name!r}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"bench.{name}")
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
