"""`GET /metrics`: the cloud's figures in Prometheus's text format, for whoever runs it.

Off unless `SC_CLOUD_METRICS_TOKEN` is set; then only a request with `Authorization: Bearer
<token>` gets them (Prometheus's `authorization` scrape setting), others 401. Counters are the
cloud's own since its start (ingest, rejections, escalation, notices to and from the other
processes on one PostgreSQL); the gauges are read at each scrape (alarms waiting for an
operator by level, gateways by state, notifications by channel and status from the database;
queues, the broker link and the peers' LISTEN session from memory); one histogram, the
seconds from a life-safety message's arrival to its alarm on the duty room's pages. Alert
rules that use them: `deploy/prometheus/alerts.yml`.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator, Mapping

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cloud.errors import DatabaseUnavailable
from cloud.web.services import Services

router = APIRouter(tags=["status"])

#: arrival → on the pages, seconds: the promise is well under a second (BRIEF.md)
PUSH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CloudMetrics:
    """The histogram the announcer feeds, and what a scrape reads."""

    def __init__(self) -> None:
        self.push_seconds = Histogram(
            "sc_alarm_push_seconds",
            "Seconds from a message's arrival at the cloud to its new alarm pushed to the pages",
            buckets=PUSH_BUCKETS,
            registry=None,
        )

    async def families(self, s: Services) -> list[Metric]:
        ingest = s.ingest
        counts = ingest.counts + s.announcer.counts
        out: list[Metric] = [
            _counter("sc_ingest", "Ingest's counts since the start, by what", "what", counts),
            _counter(
                "sc_rejected",
                "Messages refused at the boundary, by reason",
                "reason",
                s.rejects.counts,
            ),
            _counter(
                "sc_escalation",
                "Escalation steps and notifications, by what",
                "what",
                s.escalator.counts,
            ),
        ]
        if s.peers is not None:
            out += [
                _counter(
                    "sc_peer_notices",
                    "Notices to and from the other cloud processes on one PostgreSQL, by what"
                    " (sent, send_failed, dropped, received, broken, foreign, listen_lost)",
                    "what",
                    s.peers.counts,
                ),
                _gauge(
                    "sc_peers_listening",
                    "1 while the notices of the other cloud processes are listened to",
                    s.peers.listening.is_set(),
                ),
            ]
        try:
            out += await _from_database(s)
            database_up = True
        except DatabaseUnavailable:  # the rest is still worth scraping
            database_up = False
        link = s.link
        out += [
            _gauge("sc_database_up", "1 if the database answered this scrape", database_up),
            _gauge(
                "sc_ingest_holding",
                "1 while ingest holds for the database (nothing acknowledged meanwhile)",
                ingest.hold.waiting > 0,
            ),
            _gauge(
                "sc_broker_connected",
                "1 while ingest has its broker session",
                link.connected.is_set(),
            ),
            _gauge(
                "sc_telemetry_pending",
                "Readings waiting for the telemetry store",
                ingest.samples.pending,
            ),
            _gauge(
                "sc_put_aside_backlog",
                "Messages of flooding gateways waiting in their own backlogs",
                ingest.fair.backlog,
            ),
            _gauge("sc_live_listeners", "Duty-room pages on the live stream", s.hub.listeners),
            _gauge(
                "sc_ingest_shards_held",
                "Ingest shards this process consumes (docs/cluster.md, 'Several workers')",
                len(ingest.shards_held),
            ),
            _gauge("sc_ingest_shards", "Ingest shards in all", s.settings.ingest_shards),
        ]
        dropped = ingest.drops.dropped
        if dropped is not None:
            out.append(
                _gauge(
                    "sc_broker_dropped", "Messages the broker dropped while ingest watched", dropped
                )
            )
        out += list(self.push_seconds.collect())
        return out


async def _from_database(s: Services) -> list[Metric]:
    """The figures a scrape reads from the database."""
    levels = await s.alarms.unaccepted_by_level()
    waiting = GaugeMetricFamily(
        "sc_alarms_unaccepted",
        "Live alarms waiting for an operator, by level",
        labels=["level"],
    )
    for level in (1, 2, 3, 4):
        waiting.add_metric([str(level)], levels.get(level, 0))
    out: list[Metric] = [waiting]
    gateways = GaugeMetricFamily("sc_gateways", "Gateways by their last state", labels=["state"])
    states: dict[str, int] = {}
    for gateway in await s.book.gateways():
        state = str(gateway["state"])
        states[state] = states.get(state, 0) + 1
    for state in sorted(states | {"online": 0, "offline": 0}):
        gateways.add_metric([state], states.get(state, 0))
    out.append(gateways)
    sent = GaugeMetricFamily(
        "sc_notifications",
        "Notifications in the record, by channel and status (failed: given up)",
        labels=["channel", "status"],
    )
    for (channel, status), n in sorted((await s.notifications.by_channel_and_status()).items()):
        sent.add_metric([channel, status], n)
    out.append(sent)
    return out


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _counter(name: str, doc: str, label: str, counts: Mapping[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, n in sorted(counts.items()):
        family.add_metric([key], n)
    return family


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    s: Services = request.app.state.services
    token = s.settings.metrics_token
    if token is None:
        return PlainTextResponse("metrics are off (SC_CLOUD_METRICS_TOKEN)", status_code=404)
    given = request.headers.get("authorization", "")
    expected = f"Bearer {token.get_secret_value()}"
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return PlainTextResponse(
            "a bearer token is needed", status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )
    registry = CollectorRegistry(auto_describe=False)
    cloud_metrics: CloudMetrics = request.app.state.metrics
    registry.register(_Families(await cloud_metrics.families(s)))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
