"""The HTTPS documents' schemas (docs/schema/https/) stay in step with contract/, and the
bundle model is as strict as the wire messages."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contract.provisioning import ClaimRequest, ProvisioningBundle
from contract.schema import HTTPS_DOCUMENTS, HTTPS_SCHEMA_DIR, render

STALE = "is out of date with contract/: run `python -m contract.schema` and commit it"


@pytest.mark.parametrize("name", sorted(HTTPS_DOCUMENTS))
def test_checked_in_schema_is_what_the_model_renders(name: str) -> None:
    path = HTTPS_SCHEMA_DIR / f"{name}.schema.json"
    assert path.exists(), f"{path} is missing: run `python -m contract.schema`"
    assert path.read_text(encoding="utf-8") == render(HTTPS_DOCUMENTS[name]), f"{path} {STALE}"


def test_no_stray_schema_files() -> None:
    expected = {f"{name}.schema.json" for name in HTTPS_DOCUMENTS}
    stray = {p.name for p in HTTPS_SCHEMA_DIR.glob("*.json")} - expected
    assert not stray, f"{sorted(stray)} in {HTTPS_SCHEMA_DIR} belong to no model: delete them"


def bundle(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "gateway": "gw-ld01",
        "street": "jd-jinjiang",
        "issued_at": "2026-11-22T07:00:00Z",
        "broker": {"host": "mqtt.lan", "port": 8883, "username": "gw-ld01", "password": "x" * 32},
        "config": "id: gw-ld01\n",
        "site": "street: {}\n",
    }
    body.update(overrides)
    return body


def test_bundle_is_strict() -> None:
    assert ProvisioningBundle.model_validate(bundle()).broker.ca_pem is None
    with pytest.raises(ValidationError, match="extra"):
        ProvisioningBundle.model_validate(bundle(extra=1))
    with pytest.raises(ValidationError, match="gateway"):
        ProvisioningBundle.model_validate(bundle(gateway="GW 1"))
    with pytest.raises(ValidationError, match="password"):
        short = {"host": "h", "port": 1883, "username": "gw-ld01", "password": "short"}
        ProvisioningBundle.model_validate(bundle(broker=short))
    with pytest.raises(ValidationError, match="timezone"):
        ProvisioningBundle.model_validate(bundle(issued_at="2026-11-22T07:00:00"))
    with pytest.raises(ValidationError):
        ClaimRequest.model_validate({"code": ""})
