"""A gateway's figures for Prometheus, on a small HTTP port of its own (`SC_GW_METRICS_PORT`,
off without it; `SC_GW_METRICS_HOST` 127.0.0.1 by default, so only the Pi itself or an SSH
tunnel reaches it unless the installer opens it to the management network).

What an operations team alerts on (`deploy/prometheus/alerts.yml`): events waiting in the
outbox for the cloud's acknowledgement (`sc_gateway_outbox_events`), everything in it, whether
the uplink has its broker session, and the agent's counters since its start. Read at each
scrape, from the agent as it is (no thread of its own beyond the HTTP server's).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.agent import GatewayAgent


class AgentCollector(Collector):
    def __init__(self, agent: GatewayAgent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        agent = self.agent
        labels = [agent.gateway_id]
        outbox, uplink = agent.outbox, agent.uplink
        events = GaugeMetricFamily(
            "sc_gateway_outbox_events",
            "Events kept in the outbox until the cloud acknowledges them",
            labels=["gateway"],
        )
        events.add_metric(labels, outbox.count_events() if outbox is not None else 0)
        held = GaugeMetricFamily(
            "sc_gateway_outbox_messages", "Everything in the outbox", labels=["gateway"]
        )
        held.add_metric(labels, outbox.count() if outbox is not None else 0)
        link = GaugeMetricFamily(
            "sc_gateway_uplink_connected",
            "1 while the uplink has its broker session",
            labels=["gateway"],
        )
        link.add_metric(labels, 1 if uplink is not None and uplink.connected else 0)
        counts = CounterMetricFamily(
            "sc_gateway", "The agent's counts since its start, by what", labels=["gateway", "what"]
        )
        for what, n in dataclasses.asdict(agent.stats).items():
            counts.add_metric([agent.gateway_id, what], n)
        yield from (events, held, link, counts)


class MetricsServer:
    """The exporter's HTTP server (a thread of prometheus_client's), until `close()`."""

    def __init__(self, agent: GatewayAgent, host: str, port: int) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(AgentCollector(agent))
        server, thread = start_http_server(port, addr=host, registry=registry)
        self._server: WSGIServer = server
        self._thread: threading.Thread = thread
        self.port: int = server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
