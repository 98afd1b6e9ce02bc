"""The OpenAPI document as served: FastAPI's, plus the shape of our own refusals.

A route refuses input the models cannot judge alone (an unknown grid, a false alarm without
its cause) with HTTP 422 and `{"detail": "reason"}`; FastAPI documents 422 only as its
validation-error list. The document says both, so a client (and schemathesis) can rely on it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

NAME = "ErrorDetail"
REFUSAL = {
    "title": NAME,
    "type": "object",
    "properties": {
        "detail": {"type": "string", "title": "Detail"},
        "zh": {"type": "string", "title": "The reason in Chinese (when given in both)"},
        "en": {"type": "string", "title": "The reason in English (when given in both)"},
    },
    "required": ["detail"],
}


def document(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = app.openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if components.get(NAME, REFUSAL) != REFUSAL:
            raise RuntimeError(f"a model named {NAME} clashes with the refusals' schema")
        components[NAME] = REFUSAL
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                response = operation.get("responses", {}).get("422")
                content = (response or {}).get("content", {}).get("application/json")
                if content and "schema" in content:
                    content["schema"] = {
                        "anyOf": [content["schema"], {"$ref": f"#/components/schemas/{NAME}"}]
                    }
        app.openapi_schema = schema
    return app.openapi_schema
