"""Print the v1 JSON Schemas (for docs/sync-protocol.md and other implementations)."""

import json

from contract.v1 import json_schemas

if __name__ == "__main__":
    print(json.dumps(json_schemas(), indent=2))
