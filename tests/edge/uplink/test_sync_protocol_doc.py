"""docs/sync-protocol.md shows the JSON Schema of every payload; they must be the
contract's. After a contract change, refresh the page with:

    python -m tests.edge.uplink.test_sync_protocol_doc
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from contract.v1 import json_schemas

DOC = Path(__file__).resolve().parents[3] / "docs" / "sync-protocol.md"
START, END = "<!-- schemas: generated, do not edit by hand -->", "<!-- /schemas -->"
BLOCK = re.compile(r"^### `(\w+)`\n\n```json\n(.*?)\n```$", re.S | re.M)


def render() -> str:
    parts = [f"### `{name}`\n\n```json\n{json.dumps(schema, indent=2)}\n```" for name, schema in json_schemas().items()]
    return "\n\n".join(parts)


def documented() -> dict[str, dict]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index(START) + len(START):text.index(END)]
    return {name: json.loads(body) for name, body in BLOCK.findall(section)}


def test_the_documented_schemas_are_the_contracts():
    expected = json_schemas()
    shown = documented()
    assert set(shown) == set(expected), f"{DOC.name} shows {sorted(shown)}; the contract has {sorted(expected)}"
    for name, schema in expected.items():
        assert shown[name] == schema, (f"{DOC.name}: the JSON Schema of {name} differs from contract.v1; "
                                       f"run python -m tests.edge.uplink.test_sync_protocol_doc")


def test_the_documented_topics_are_the_contracts():
    from contract import v1

    text = DOC.read_text(encoding="utf-8")
    for topic in (v1.up_topic("{site}", "{stream}"), v1.state_topic("{site}"), v1.ack_topic("{site}"),
                  v1.receipt_topic("{site}"), *(v1.down_topic("{site}", kind) for kind in v1.DOWN_KINDS)):
        assert f"`{topic}`" in text, topic
    for stream in v1.STREAMS:
        assert f"| `{stream}` |" in text, stream


if __name__ == "__main__":
    text = DOC.read_text(encoding="utf-8")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    DOC.write_text(f"{head}{START}\n\n{render()}\n\n{END}{tail}", encoding="utf-8")
    print(f"{DOC}: schemas refreshed")
