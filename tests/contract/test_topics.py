"""Topic names: building and parsing under `sc/v1/{gateway}/`."""

from __future__ import annotations

import pytest

from contract import topics
from contract.topics import Channel, Topic, TopicError


def test_builders_name_the_contract_topics() -> None:
    assert topics.status("gw-ld01") == "sc/v1/gw-ld01/status"
    assert topics.event("gw-ld01") == "sc/v1/gw-ld01/event"
    assert topics.telemetry("gw-ld01") == "sc/v1/gw-ld01/telemetry"
    assert topics.reply("gw-ld01") == "sc/v1/gw-ld01/reply"
    assert topics.command("gw-ld01", "call_accepted") == "sc/v1/gw-ld01/cmd/call_accepted"


@pytest.mark.parametrize(
    "topic",
    [
        topics.status("gw-ld01"),
        topics.event("gw_2"),
        topics.telemetry("0"),
        topics.reply("gw-ld01"),
        topics.command("gw-ld01", "call_accepted"),
        topics.command("g" * 63, "w" * 32),
    ],
)
def test_build_and_parse_round_trip(topic: str) -> None:
    parsed = topics.parse(topic)
    assert str(parsed) == topic
    assert topics.parse(str(parsed)) == parsed


def test_parse_gives_gateway_channel_and_command() -> None:
    assert topics.parse("sc/v1/gw-ld01/event") == Topic("gw-ld01", Channel.EVENT)
    assert topics.parse("sc/v1/gw-ld01/cmd/walk_test") == Topic("gw-ld01", Channel.CMD, "walk_test")


def test_subscriptions() -> None:
    assert topics.subscription(Channel.EVENT) == "sc/v1/+/event"
    assert topics.subscription(Channel.STATUS, "gw-ld01") == "sc/v1/gw-ld01/status"
    assert topics.subscription(Channel.CMD, "gw-ld01") == "sc/v1/gw-ld01/cmd/+"


@pytest.mark.parametrize(
    ("topic", "says"),
    [
        # wrong root
        ("sc/v2/gw-ld01/event", "not under sc/v1"),
        ("xx/v1/gw-ld01/event", "not under sc/v1"),
        ("/sc/v1/gw-ld01/event", "not under sc/v1"),
        ("SC/V1/gw-ld01/event", "not under sc/v1"),
        ("sc/v1/gw-ld01", "not under sc/v1"),
        ("sc/v1", "not under sc/v1"),
        ("", "not under sc/v1"),
        # unknown channel
        ("sc/v1/gw-ld01/events", "unknown channel 'events'"),
        ("sc/v1/gw-ld01/alarm", "unknown channel"),
        ("sc/v1/gw-ld01/EVENT", "unknown channel"),
        ("sc/v1/gw-ld01/", "unknown channel"),
        # extra levels
        ("sc/v1/gw-ld01/event/x", "unexpected levels"),
        ("sc/v1/gw-ld01/status/", "unexpected levels"),
        ("sc/v1/gw-ld01/telemetry/gas-0101", "unexpected levels"),
        ("sc/v1/gw-ld01/cmd/call_accepted/x", "bad command topic"),
        # bad gateway id
        ("sc/v1/GW-LD01/event", "bad gateway id"),
        ("sc/v1/+/event", "bad gateway id"),
        ("sc/v1/#/event", "bad gateway id"),
        ("sc/v1//event", "bad gateway id"),
        ("sc/v1/-gw/event", "bad gateway id"),
        ("sc/v1/gw ld01/event", "bad gateway id"),
        ("sc/v1/" + "g" * 64 + "/event", "bad gateway id"),
        # bad command names
        ("sc/v1/gw-ld01/cmd", "bad command topic"),
        ("sc/v1/gw-ld01/cmd/", "bad command topic"),
        ("sc/v1/gw-ld01/cmd/walk-test", "bad command topic"),
        ("sc/v1/gw-ld01/cmd/Walk_test", "bad command topic"),
        ("sc/v1/gw-ld01/cmd/1st", "bad command topic"),
        ("sc/v1/gw-ld01/cmd/+", "bad command topic"),
        ("sc/v1/gw-ld01/cmd/" + "c" * 33, "bad command topic"),
    ],
)
def test_parse_refuses_with_a_reason(topic: str, says: str) -> None:
    with pytest.raises(TopicError, match=says.replace("+", r"\+")) as caught:
        topics.parse(topic)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("name", ["walk-test", "Config", "", "9lives", "a" * 33, "a/b", "#"])
def test_command_builder_refuses_bad_names(name: str) -> None:
    with pytest.raises(TopicError, match="bad command name"):
        topics.command("gw-ld01", name)
