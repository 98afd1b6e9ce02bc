from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.edge.helpers import LocalBroker, Rig, make_rig


@pytest.fixture
def rig_factory() -> Iterator[Callable[..., Rig]]:
    """Build rigs (drivers on simulated hardware); all are closed after the test."""
    made: list[Rig] = []

    def make(*args: Any, **kwargs: Any) -> Rig:
        rig = make_rig(*args, **kwargs)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.close()


@pytest.fixture
def local_broker() -> Iterator[LocalBroker]:
    """The gateway's local broker (zigbee2mqtt's), started, with its two accounts."""
    broker = LocalBroker()
    broker.add_user("zigbee2mqtt")
    broker.add_user("sc-gateway")
    broker.start()
    yield broker
    broker.cleanup()
