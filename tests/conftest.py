"""Session-wide real servers. Every test that needs a broker, InfluxDB or PostgreSQL uses these
(the system of record's backends: tests/db_backends.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.db_backends import (  # noqa: F401
    database_url,
    db_backend,
    empty_database_url,
    new_database,
    postgresql,
    postgresql_databases,
)
from tests.servers import InfluxDB, Mosquitto, RabbitCluster

REPO = Path(__file__).resolve().parent.parent
DEMO_SITE = REPO / "firmware_configs" / "sites" / "demo.yaml"


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[Mosquitto]:
    """One Mosquitto for the session, with accounts `cloud` and one per demo gateway.

    Tests that must stop or restart a broker make their own `Mosquitto()`.
    """
    broker = Mosquitto()
    for user in ("cloud", "gw-ld01", "gw-ld02"):
        broker.add_user(user)
    broker.start()
    yield broker
    broker.cleanup()


#: The accounts of the session's RabbitMQ cluster: the cloud, the demo's gateways and the fault
#: suite's.
CLUSTER_USERS = ("cloud", "gw-ld01", "gw-ld02", "gw-f01", "gw-f02")


@pytest.fixture(scope="session")
def rabbit_cluster() -> Iterator[RabbitCluster]:
    """A RabbitMQ cluster of 3 nodes for the session (~25-35 s to start: only when a test asks
    for it, at most once), with the accounts of `CLUSTER_USERS` and the shipped policies
    (deploy/rabbitmq/definitions.json). A test that kills a node starts it again."""
    cluster = RabbitCluster()
    for user in CLUSTER_USERS:
        cluster.add_user(user)
    cluster.start()
    yield cluster
    cluster.cleanup()


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB]:
    server = InfluxDB(tmp_path_factory.mktemp("influxdb"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def demo_site_path() -> Path:
    return DEMO_SITE
