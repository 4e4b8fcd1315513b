"""The dependency floors in pyproject.toml stay above every release with a published advisory.

A floor is what `pip install` may pick on a box that already has an older release; a floor below a
fixed advisory lets a site run a vulnerable HTTP parser. The table is the advisories we know of
(docs/architecture.md, "Floors are security floors"): add a row when one appears.
"""

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent

# package -> (first release without the advisory, the advisory)
FIXED_IN = {
    "aiohttp": ("3.14.3", "GHSA-cq5v-8q36-5273 (C parser heap read), GHSA-mfx4-hv73-q22v (smuggling)"),
    "pymodbus": ("3.12", "framer denial of service (pymodbus PR 2852)"),
    "pytest": ("9.0.3", "CVE-2025-71176 (predictable /tmp/pytest-of-USER)"),
    "setuptools": ("78.1.1", "CVE-2025-47273 (path traversal)"),
    "pydantic": ("2.4.0", "CVE-2024-3772 (ReDoS in email validation)"),
    "websockets": ("9.1", "CVE-2021-33880 (timing attack on Basic auth)"),
    "cryptography": ("50.0.0", "CVE-2026-69247 / GHSA-g6cj-pr64-35w5 (PKCS#7 decryption oracle); "
                               "GHSA-537c-gmf6-5ccf (48.0.1) and older ones before it"),
    "scipy": ("1.11", "CVE-2023-25399 / PYSEC-2023-102 (refcount leak in ndimage's Py_FindObjects, OSV: before "
                      "1.11.0); CVE-2023-29824 (use-after-free in the same function, fixed in 1.8.0)"),
    "numpy": ("1.22.0", "CVE-2021-34141 (incomplete string comparison), CVE-2021-41496 (f2py buffer overflow), "
                        "CVE-2021-41495 (NULL dereference in sort)"),
}


def _requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lines = [*project["project"]["dependencies"], *project["build-system"]["requires"],
             *(line for extra in project["project"]["optional-dependencies"].values() for line in extra)]
    return {(req := Requirement(line)).name: req for line in lines}


def _floor(req: Requirement) -> Version | None:
    floors = [Version(spec.version) for spec in req.specifier if spec.operator in (">=", "==", "~=")]
    return max(floors) if floors else None


def test_every_dependency_has_a_floor():
    missing = [name for name, req in _requirements().items() if _floor(req) is None]
    assert not missing, f"dependencies without a lower bound: {missing}"


def test_no_floor_admits_a_release_with_a_known_advisory():
    requirements = _requirements()
    too_low = {name: f"floor {_floor(requirements[name])} < {fixed}: {why}"
               for name, (fixed, why) in FIXED_IN.items()
               if name in requirements and _floor(requirements[name]) < Version(fixed)}
    assert not too_low, too_low


def test_the_documented_floors_are_the_declared_ones():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    for name in ("aiohttp", "pymodbus", "pytest", "setuptools"):
        assert f"{_floor(_requirements()[name])}" in doc, f"docs/architecture.md does not give {name}'s floor"
