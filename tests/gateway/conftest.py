from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.config import load_gateway_config
from gateway.agent import GatewayAgent
from gateway.agent_settings import AgentOptions
from gateway.uplink_settings import BrokerParams, UplinkOptions
from tests.gateway.helpers import DEMO_SITE, CloudClient, clear_retained_status
from tests.servers import Mosquitto

#: Fast timings for tests: one heartbeat at start, quick telemetry, quick reconnects.
FAST = AgentOptions(
    heartbeat_s=3600,
    telemetry_period_s=0.3,
    uplink=UplinkOptions(backoff_min_s=0.05, backoff_max_s=0.5, drain_s=0.5),
)


@pytest.fixture
def make_agent(tmp_path: Path) -> Iterator[Callable[..., GatewayAgent]]:
    """In-process agents on simulated hardware; closed after the test."""
    agents: list[GatewayAgent] = []
    used: list[tuple[Mosquitto, str]] = []

    def make(
        broker: Mosquitto,
        gateway: str = "gw-ld01",
        *,
        options: AgentOptions = FAST,
        models: dict[str, dict[str, Any]] | None = None,
        outbox_path: Path | None = None,
    ) -> GatewayAgent:
        config = load_gateway_config(DEMO_SITE, gateway)
        for name, changes in (models or {}).items():
            config = config.with_model(name, **changes)
        agent = GatewayAgent(
            config,
            broker=BrokerParams(port=broker.port, username=gateway, password=broker.users[gateway]),
            outbox_path=outbox_path or tmp_path / f"{gateway}-{len(agents)}.sqlite3",
            simulate=True,
            options=options,
        )
        agents.append(agent)
        if not any(b is broker and g == gateway for b, g in used):
            used.append((broker, gateway))
        return agent

    yield make
    for agent in agents:
        agent.close()
    for broker, gateway in used:
        clear_retained_status(broker, gateway)


@pytest.fixture
def cloud_factory() -> Iterator[Callable[..., CloudClient]]:
    clients: list[CloudClient] = []

    def make(broker: Mosquitto, *filters: str) -> CloudClient:
        client = CloudClient(broker, *filters)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def private_broker() -> Iterator[Mosquitto]:
    """A broker of the test's own (to stop and restart), with `cloud` and `gw-ld01`."""
    broker = Mosquitto()
    broker.add_user("cloud")
    broker.add_user("gw-ld01")
    yield broker
    broker.cleanup()
