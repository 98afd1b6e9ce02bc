"""A gateway's /metrics: what waits in its outbox for the cloud, and whether its uplink is up,
as Prometheus would scrape them from a running agent."""

from __future__ import annotations

import dataclasses
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import MetricsServer
from tests.gateway.helpers import CloudClient, wait_until
from tests.servers import free_port

GW = "gw-ld01"


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_events_the_cloud_has_not_acknowledged_show_as_waiting(mosquitto, make_agent):
    silent = CloudClient(mosquitto, f"sc/v1/{GW}/event", acks=False)  # a cloud that never acks
    agent = make_agent(mosquitto)
    agent.start()
    exporter = MetricsServer(agent, "127.0.0.1", 0)
    try:
        assert agent.wait_connected(5)
        agent.hardware.press_call("call-0101")
        silent.wait(lambda: len(silent.events()) >= 2)  # the heartbeat and the call

        def waiting() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            now = scrape(exporter.port)
            return now if now[("sc_gateway_outbox_events", (("gateway", GW),))] == 2 else None

        figures = wait_until(waiting, 5, "two events waiting for the cloud")
        assert figures[("sc_gateway_uplink_connected", (("gateway", GW),))] == 1
        assert figures[("sc_gateway_total", (("gateway", GW), ("what", "events")))] == 2
    finally:
        exporter.close()
        silent.close()


def test_an_uplink_without_a_broker_shows_as_down(mosquitto, make_agent):
    agent = make_agent(mosquitto)
    agent.broker = dataclasses.replace(agent.broker, port=free_port())  # nothing listens there
    agent.start()
    exporter = MetricsServer(agent, "127.0.0.1", 0)
    try:
        agent.hardware.trip_smoke("smoke-0102")

        def kept() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            now = scrape(exporter.port)  # the heartbeat and the alarm, kept
            return now if now[("sc_gateway_outbox_events", (("gateway", GW),))] >= 2 else None

        figures = wait_until(kept, 5, "the alarm kept in the outbox")
        assert figures[("sc_gateway_uplink_connected", (("gateway", GW),))] == 0
    finally:
        exporter.close()
