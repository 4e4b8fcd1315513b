"""Register maps: every shipped map loads, is complete and consistent; broken maps
are refused with a reason; rows become few reads and decode back to values."""

from __future__ import annotations

import tomllib
from importlib import resources

import pytest

from edge.meters.blocks import Block, decode, plan
from edge.meters.registers import (PHASE_QUANTITIES, MapError, RegisterMap, RegisterRow, load_map, parse_map,
                                   shipped_names)

from tests.edge.meters.servers import KNOWN, close_to, expected, registers_for

EXPECTED_MODELS = {"sdm630", "sdm72dm", "em24", "em340", "abb_b23", "abb_b24", "sunspec_201", "sunspec_203"}


def test_the_promised_models_are_shipped():
    assert EXPECTED_MODELS <= set(shipped_names())


@pytest.mark.parametrize("name", shipped_names())
def test_every_shipped_map_is_complete_and_consistent(name):
    rmap = load_map(name)
    assert rmap.source, "say where the numbers come from"
    keys = [r.key for r in rmap.registers]
    assert len(keys) == len(set(keys))
    needed = PHASE_QUANTITIES if rmap.phases == 3 else [q for q in PHASE_QUANTITIES if q.endswith("l1")]
    assert set(needed) <= set(keys)
    assert {"import_energy", "export_energy", "frequency"} <= set(keys)
    spans = sorted((r.function, r.address, r.address + r.words) for r in rmap.registers)
    for (f1, _, end), (f2, start, _) in zip(spans, spans[1:]):
        assert f1 != f2 or start >= end, f"overlap in {name}"
    names = {r.name for r in rmap.registers if r.type == "sunssf"}
    assert all(r.scale_factor in names for r in rmap.registers if r.scale_factor)
    # A meter read costs at most a few requests.
    assert len(plan(rmap.registers, 0, rmap.max_gap)) <= 3


def test_every_map_file_is_plain_toml_with_a_header_comment():
    folder = resources.files("edge.meters") / "maps"
    for path in folder.iterdir():
        if path.name.endswith(".toml"):
            text = path.read_text(encoding="utf-8")
            assert text.startswith("#"), f"{path.name}: start with what the meter is and where the map is from"
            tomllib.loads(text)


def test_b24_is_read_like_the_b23():
    assert load_map("abb_b24") is load_map("abb_b23")


def test_single_and_three_phase_sunspec():
    assert load_map("sunspec_201").phases == 1
    assert load_map("sunspec_203").phases == 3
    assert load_map("sunspec_203").sunspec_model == 203


def _row(**kw) -> dict:
    return {"function": 4, "type": "float32", **kw}


def _full(**changes) -> list[dict]:
    rows = {q: _row(measures=q, address=2 * i) for i, q in enumerate(PHASE_QUANTITIES)}
    rows.update(changes)
    return [r for r in rows.values() if r is not None]


@pytest.mark.parametrize("rows, problem", [
    (_full(current_l2=None), "missing current_l2"),
    (_full(power_l3=_row(measures="power_l3", address=0)), "overlap at register 0"),
    (_full(voltage_l1=_row(measures="voltage_l1", address=100, scale_factor="V_SF")), "no \"sunssf\" row"),
    (_full(x=_row(measures="current_l1", address=200)), "current_l1 is given more than once"),
    (_full(current_l1=_row(measures="current_l1", address=0, function=6)), "function must be 3"),
    (_full(current_l1=_row(measures="current_l1", address=0, type="float64")), "type"),
    (_full(current_l1=_row(measures="current_l1", address=0, scale=0)), "scale must be"),
    (_full(current_l1=_row(measures="current_l1", address=70000)), "0..65535"),
    (_full(current_l1=_row(measures="amps", address=0)), "measures"),
    (_full(sf=_row(name="A_SF", address=300, type="sunssf", measures="current_l1")), "give it a name"),
    (_full(current_l1=_row(address=0)), "say what the row measures"),
])
def test_broken_maps_are_refused_with_the_reason(rows, problem):
    with pytest.raises(MapError) as caught:
        parse_map("broken", {"registers": rows})
    assert problem in str(caught.value)


def test_a_map_with_only_l1_rows_is_single_phase():
    rows = [_row(measures=q, address=2 * i) for i, q in enumerate(("current_l1", "voltage_l1", "power_l1"))]
    assert parse_map("one", {"registers": rows}).phases == 1


def test_sunspec_rows_must_be_holding_registers():
    rows = _full()
    with pytest.raises(MapError, match="function = 3"):
        parse_map("s", {"sunspec_model": 203, "registers": rows})


def test_defaults_fill_rows():
    rmap = parse_map("d", {"defaults": {"function": 3, "type": "int16", "word_order": "little"},
                           "registers": [{"measures": q, "address": i} for i, q in enumerate(PHASE_QUANTITIES)]})
    assert all(r.function == 3 and r.type == "int16" for r in rmap.registers)


def test_unknown_shipped_map():
    with pytest.raises(MapError, match="no shipped register map"):
        load_map("sdm999")


# -- planning reads -----------------------------------------------------------------------

def _rows(*spans: tuple[int, int, str]) -> list[RegisterRow]:
    """(function, address, type) -> rows measuring one quantity each."""
    return [RegisterRow(measures=PHASE_QUANTITIES[i], address=address, function=function, type=kind)
            for i, (function, address, kind) in enumerate(spans)]


def test_contiguous_registers_are_one_read():
    assert plan(_rows((4, 0, "uint32"), (4, 2, "uint32"), (4, 4, "uint32"))) == [Block(4, 0, 6)]


def test_a_gap_splits_reads_unless_the_map_allows_it():
    rows = _rows((4, 0, "uint32"), (4, 10, "uint32"))
    assert plan(rows) == [Block(4, 0, 2), Block(4, 10, 2)]
    assert plan(rows, max_gap=8) == [Block(4, 0, 12)]


def test_function_codes_are_separate_reads():
    assert plan(_rows((3, 0, "uint16"), (4, 1, "uint16"))) == [Block(3, 0, 1), Block(4, 1, 1)]


def test_no_read_exceeds_125_registers():
    rows = [RegisterRow(measures=q, address=i * 60, function=3, type="uint16") for i, q in enumerate(PHASE_QUANTITIES)]
    blocks = plan(rows, max_gap=100)
    assert all(b.count <= 125 for b in blocks)
    assert sum(1 for r in rows if any(b.address <= r.address < b.end for b in blocks)) == len(rows)


def test_offset_shifts_the_reads():
    assert plan(_rows((3, 3, "uint16")), offset=40070) == [Block(3, 40073, 1)]


# -- decoding: the inverse of what a meter would hold ----------------------------------------

@pytest.mark.parametrize("name", sorted(set(shipped_names()) - {"sunspec_201", "sunspec_203"}))
def test_decode_reads_back_what_the_meter_holds(name):
    rmap = load_map(name)
    regs = registers_for(rmap, KNOWN)
    answers = {b: [regs[b.function].get(a, 0) for a in range(b.address, b.end)]
               for b in plan(rmap.registers, 0, rmap.max_gap)}
    values = decode(rmap, answers)
    for quantity, value in expected(rmap).items():
        assert close_to(values[quantity], abs(value) if quantity.startswith("current") else value), quantity


def test_unavailable_markers_and_absurd_scale_factors_decode_to_none():
    rmap = load_map("sunspec_203")
    regs = registers_for(rmap, KNOWN)[3]
    regs[4] = 0x8000            # AphB not implemented
    regs[15] = 0x0020           # V_SF = 32: not a SunSpec scale factor
    block = Block(3, 3, 52)
    values = decode(rmap, {block: [regs.get(a, 0) for a in range(3, 55)]})
    assert values["current_l2"] is None
    assert values["voltage_l1"] is None
    assert close_to(values["current_l1"], 12.34)


def test_abb_largest_value_means_not_measured():
    rmap = load_map("abb_b23")
    regs = registers_for(rmap, KNOWN)[3]
    for a in range(0x5000, 0x5004):
        regs[a] = 0xFFFF
    answers = {b: [regs.get(a, 0) for a in range(b.address, b.end)] for b in plan(rmap.registers, 0, rmap.max_gap)}
    assert decode(rmap, answers)["import_energy"] is None


def test_little_endian_word_order():
    rmap = RegisterMap(name="le", registers=[
        RegisterRow(measures=q, address=2 * i, function=4, type="int32", word_order="little", scale=0.001)
        for i, q in enumerate(PHASE_QUANTITIES)])
    # 100000 = 0x000186A0: low word first.
    answers = {Block(4, 0, 18): [0x86A0, 0x0001] * 9}
    assert decode(rmap, answers)["current_l1"] == pytest.approx(100.0)
