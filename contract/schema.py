"""Generate the JSON Schema of every wire message into docs/schema/.

Run `python -m contract.schema` after changing contract/models.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from contract.models import Ack, Command, Event, Reply, Status, Telemetry
from contract.provisioning import ProvisioningBundle

MESSAGES: dict[str, type[BaseModel]] = {
    "event": Event,
    "telemetry": Telemetry,
    "status": Status,
    "command": Command,
    "reply": Reply,
    "ack": Ack,
}

#: Documents served over HTTPS rather than MQTT (their schemas go to docs/schema/https/).
HTTPS_DOCUMENTS: dict[str, type[BaseModel]] = {
    "provisioning-bundle": ProvisioningBundle,
}

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "docs" / "schema"
HTTPS_SCHEMA_DIR = SCHEMA_DIR / "https"


def render(model: type[BaseModel]) -> str:
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def main(out: Path = SCHEMA_DIR) -> int:
    out.mkdir(parents=True, exist_ok=True)
    for name, model in MESSAGES.items():
        path = out / f"{name}.schema.json"
        path.write_text(render(model), encoding="utf-8")
        print(f"wrote {path}")
    https = out / HTTPS_SCHEMA_DIR.name
    https.mkdir(parents=True, exist_ok=True)
    for name, model in HTTPS_DOCUMENTS.items():
        path = https / f"{name}.schema.json"
        path.write_text(render(model), encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
