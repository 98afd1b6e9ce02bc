"""The `restore` event type and the `offline_s` unit (issue 3): on the wire, and never paging."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from contract.models import MAX_OFFLINE_S, Command, Event, EventType, Values, decode

DEFAULT_RULES = Path(__file__).resolve().parents[2] / "firmware_configs" / "rules" / "default.yaml"


def test_a_gateway_restore_with_its_outage_length_reads_from_the_wire():
    event = decode(
        Event,
        b'{"id":"5e0c2a4b-8d1f-4c3e","gateway":"gw-ld01","device":"gw-ld01","boot":"b1",'
        b'"seq":9,"ts":"2026-11-22T06:35:02Z","kind":"gateway","type":"restore",'
        b'"values":{"offline_s":7980.4}}',
    )
    assert event.type is EventType.RESTORE and event.values.offline_s == 7980.4


@pytest.mark.parametrize("bad", [-1, MAX_OFFLINE_S + 1])
def test_offline_s_is_bounded(bad):
    with pytest.raises(ValidationError):
        Values(offline_s=bad)


def test_no_default_rule_pages_on_restore():
    rules = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    paging = [r["rule"] for r in rules["events"] if r.get("type") == EventType.RESTORE.value]
    assert not paging, f"rules that would raise an alarm on a restore: {paging}"


def test_a_command_may_carry_a_document_and_older_commands_still_read():
    old = decode(Command, b'{"v":1,"id":"acc-41-0416","ts":"2026-11-22T04:16:12Z"}')
    assert old.document is None
    new = decode(
        Command, b'{"v":1,"id":"cfg-1-000001","ts":"2026-11-22T05:00:00Z","document":"id: x\\n"}'
    )
    assert new.document == "id: x\n"
    with pytest.raises(ValidationError):
        Command(id="cfg-1-000002", ts="2026-11-22T05:00:00Z", document="x" * 70_000)
