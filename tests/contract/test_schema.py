"""The checked-in JSON Schemas and docs/protocol.md stay in step with contract/."""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import subprocess
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from pydantic import BaseModel, ValidationError

from contract import models, topics
from contract.models import EventType, Kind, Values, decode
from contract.schema import MESSAGES, SCHEMA_DIR, render
from contract.site import load_site
from contract.topics import Channel
from tests.servers import Mosquitto

REPO = Path(__file__).resolve().parents[2]
PROTOCOL = REPO / "docs" / "protocol.md"
DEMO_SITE = REPO / "firmware_configs" / "sites" / "demo.yaml"
DEFAULT_RULES = REPO / "firmware_configs" / "rules" / "default.yaml"
CHANNEL_MODELS = {
    Channel.EVENT: "event",
    Channel.TELEMETRY: "telemetry",
    Channel.STATUS: "status",
    Channel.REPLY: "reply",
    Channel.CMD: "command",
}
STALE = "is out of date with contract/models.py: run `python -m contract.schema` and commit it"


# ---- docs/schema/ ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_checked_in_schema_is_what_the_models_render(name: str) -> None:
    path = SCHEMA_DIR / f"{name}.schema.json"
    assert path.exists(), f"{path} is missing: run `python -m contract.schema`"
    assert path.read_text(encoding="utf-8") == render(MESSAGES[name]), f"{path} {STALE}"


def test_no_stray_schema_files() -> None:
    expected = {f"{name}.schema.json" for name in MESSAGES}
    stray = {p.name for p in SCHEMA_DIR.glob("*.json")} - expected
    assert not stray, f"{sorted(stray)} in {SCHEMA_DIR} belong to no model: delete them"


# ---- docs/protocol.md: every example is checked -----------------------------------------------


def _protocol() -> str:
    return PROTOCOL.read_text(encoding="utf-8")


_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_MARK = re.compile(r"<!--\s*example:\s*(\w+)(\s+invalid)?\s*-->\s*$")


def _blocks(language: str) -> list[tuple[int, str, str]]:
    """(line number, the text before the fence, the body) of each fenced block."""
    text = _protocol()
    found = []
    for match in _FENCE.finditer(text):
        if match.group(1) == language:
            line = text.count("\n", 0, match.start()) + 1
            found.append((line, text[: match.start()].rstrip(), match.group(2)))
    return found


def _json_examples() -> list[tuple[str, str, bool, str]]:
    """(where, model name, expected valid, body) of each ```json block."""
    examples = []
    for line, before, body in _blocks("json"):
        mark = _MARK.search(before.splitlines()[-1] if before else "")
        name = mark.group(1) if mark else "(unmarked)"
        valid = not (mark and mark.group(2))
        examples.append((f"protocol.md:{line}", name, valid, body))
    return examples


def _mosquitto_pubs() -> list[tuple[str, list[str]]]:
    commands = []
    for line, _before, body in _blocks("sh"):
        for command in body.replace("\\\n", " ").splitlines():
            if command.strip().startswith("mosquitto_pub"):
                commands.append((f"protocol.md:{line}", shlex.split(command)))
    return commands


def _option(argv: list[str], flag: str) -> str:
    assert flag in argv, f"{flag} missing from {argv}"
    return argv[argv.index(flag) + 1]


def test_protocol_has_examples_of_every_message() -> None:
    names = {name for _, name, valid, _ in _json_examples() if valid}
    assert names == set(MESSAGES)
    assert any(not valid for *_, valid, _ in _json_examples())
    assert len(_mosquitto_pubs()) >= 3


@pytest.mark.parametrize(
    ("where", "name", "valid", "body"),
    _json_examples(),
    ids=[f"{w}-{n}" for w, n, _, _ in _json_examples()],
)
def test_protocol_json_example(where: str, name: str, valid: bool, body: str) -> None:
    assert name in MESSAGES, (
        f"{where}: put `<!-- example: MODEL -->` (or `<!-- example: MODEL invalid -->`) on the "
        f"line before each ```json block; MODEL is one of {sorted(MESSAGES)}"
    )
    model = MESSAGES[name]
    if valid:
        try:
            message = decode(model, body)  # as the cloud reads it off the wire
        except ValidationError as exc:
            pytest.fail(f"{where}: the {name} example does not validate:\n{exc}")
        _assert_devices_exist(where, message)
    else:
        with pytest.raises(ValidationError):
            decode(model, body)


@pytest.mark.parametrize(("where", "argv"), _mosquitto_pubs(), ids=lambda v: str(v)[:40])
def test_protocol_mosquitto_pub_example(where: str, argv: list[str]) -> None:
    topic = topics.parse(_option(argv, "-t"))
    assert _option(argv, "-u") == topic.gateway, f"{where}: the user name is the gateway id"
    assert _option(argv, "-q") == "1", f"{where}: publish with QoS 1"
    assert _option(argv, "-p") == "1883"
    assert ("-r" in argv) == (topic.channel is Channel.STATUS), f"{where}: only status is retained"
    payload = _option(argv, "-m")
    model = MESSAGES[CHANNEL_MODELS[topic.channel]]
    limit = {
        Channel.EVENT: models.MAX_EVENT_BYTES,
        Channel.TELEMETRY: models.MAX_TELEMETRY_BYTES,
        Channel.STATUS: models.MAX_STATUS_BYTES,
        Channel.REPLY: models.MAX_REPLY_BYTES,
    }.get(topic.channel)
    if limit is not None:
        assert len(payload.encode()) <= limit
    message = model.model_validate_json(payload)
    assert getattr(message, "gateway", topic.gateway) == topic.gateway
    _assert_devices_exist(where, message)


def test_the_mosquitto_pub_example_raises_a_smoke_alarm() -> None:
    for _where, argv in _mosquitto_pubs():
        if topics.parse(_option(argv, "-t")).channel is Channel.EVENT:
            event = models.Event.model_validate_json(_option(argv, "-m"))
            assert (event.gateway, event.device) == ("gw-ld01", "smoke-0102")
            assert (event.kind, event.type) == (Kind.SMOKE, EventType.ALARM)
            return
    pytest.fail("no mosquitto_pub example publishes an event")


def _assert_devices_exist(where: str, message: BaseModel) -> None:
    """Examples name the demo site's real gateway and devices, so they work against the demo."""
    site = load_site(DEMO_SITE)
    gateway_id = getattr(message, "gateway", None)
    if gateway_id is None:
        return
    devices = {d.id for d in site.gateway(gateway_id).devices} | {gateway_id}
    named = {r.device for r in getattr(message, "readings", [])}
    device = getattr(message, "device", None)
    if device is not None:
        named.add(device)
    unknown = named - devices
    assert not unknown, f"{where}: {sorted(unknown)} not on {gateway_id} in {DEMO_SITE.name}"


# ---- docs/protocol.md: nothing of the contract left out ------------------------------------


def _code_spans() -> set[str]:
    return set(re.findall(r"`([^`\n]+)`", _protocol()))


@pytest.mark.parametrize(
    "word",
    [*Values.model_fields, *(k.value for k in Kind), *(t.value for t in EventType)],
)
def test_protocol_names_every_unit_kind_and_type(word: str) -> None:
    assert word in _code_spans(), f"docs/protocol.md does not document `{word}`"


@pytest.mark.parametrize(
    "name",
    [
        "MAX_EVENT_BYTES",
        "MAX_TELEMETRY_BYTES",
        "MAX_STATUS_BYTES",
        "MAX_REPLY_BYTES",
        "MAX_READINGS_PER_BATCH",
    ],
)
def test_protocol_states_the_size_limits(name: str) -> None:
    value: Any = getattr(models, name)
    lines = [line for line in _protocol().splitlines() if f"`{name}`" in line]
    assert lines, f"docs/protocol.md does not mention `{name}`"
    assert all(f"= {value}" in line for line in lines), f"`{name}` is {value} now: {lines}"


def test_protocol_lists_every_default_rule() -> None:
    config = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    rules = [r["rule"] for r in config["events"] + config.get("thresholds", [])]
    missing = [rule for rule in rules if rule not in _code_spans()]
    assert not missing, f"docs/protocol.md section 6 does not list the rules {missing}"


def test_protocol_links_resolve() -> None:
    for link in re.findall(r"\]\((schema/[^)]+)\)", _protocol()):
        assert (PROTOCOL.parent / link).exists(), f"broken link {link}"
        json.loads((PROTOCOL.parent / link).read_text(encoding="utf-8"))


# ---- the documented mosquitto_pub commands work against a real broker with our ACL ----------


def _run_on(broker: Mosquitto, argv: list[str], **replace: str) -> list[str]:
    """The documented command aimed at the test broker, with the gateway's real password."""
    argv = list(argv)
    replace = {
        "-h": "127.0.0.1",
        "-p": str(broker.port),
        "-P": broker.users[argv[argv.index("-u") + 1]],
        **replace,
    }
    for flag, value in replace.items():
        argv[argv.index(flag) + 1] = value
    return argv


class _CloudSubscriber:
    """The cloud's account, subscribed (SUBACK received) before anything is published. It
    keeps only what is published after that: not a retained message an earlier test left on
    the shared broker (a stopped gateway agent's `offline` status)."""

    def __init__(self, broker: Mosquitto, topic: str) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"doc-test-{os.urandom(4).hex()}"
        )
        self.client.username_pw_set("cloud", broker.users["cloud"])
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert subscribed.wait(5), "the cloud account could not subscribe"

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if not message.retain:
            self.messages.put((message.topic, bytes(message.payload)))

    def next(self, timeout: float) -> tuple[str, bytes] | None:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.parametrize(("where", "argv"), _mosquitto_pubs(), ids=lambda v: str(v)[:40])
def test_protocol_mosquitto_pub_reaches_the_cloud_account(
    mosquitto: Mosquitto, where: str, argv: list[str]
) -> None:
    topic = _option(argv, "-t")
    sub = _CloudSubscriber(mosquitto, topic)
    try:
        subprocess.run(_run_on(mosquitto, argv), check=True, timeout=10, capture_output=True)
        got = sub.next(timeout=5)
    finally:
        sub.close()
    assert got == (topic, _option(argv, "-m").encode()), f"{where}: received {got!r}"
    if "-r" in argv:  # clear the retained status again (a zero-length retained message)
        clear = _run_on(mosquitto, argv)
        at = clear.index("-m")
        clear[at : at + 2] = ["-n"]
        subprocess.run(clear, check=True, timeout=10, capture_output=True)


def test_a_gateway_cannot_publish_under_another_gateway(mosquitto: Mosquitto) -> None:
    where, argv = next((w, a) for w, a in _mosquitto_pubs() if "/event" in _option(a, "-t"))
    spoofed = "sc/v1/gw-ld02/event"
    own = _option(argv, "-t")
    sub = _CloudSubscriber(mosquitto, "sc/v1/+/event")
    try:
        for topic in (spoofed, own):  # the second one shows the first would have arrived
            subprocess.run(
                _run_on(mosquitto, argv, **{"-t": topic}),
                check=True,
                timeout=10,
                capture_output=True,
            )
        got = sub.next(timeout=5)
        extra = sub.next(timeout=0.2)
    finally:
        sub.close()
    assert got is not None and got[0] == own, f"{where}: gw-ld01 published on gw-ld02's topic"
    assert extra is None, f"{where}: unexpected {extra!r}"
