"""The field gateway: every device model at once (wired, UART, Modbus, Zigbee through a local
zigbee2mqtt broker) through the agent and the real Mosquitto to the cloud's account."""

from __future__ import annotations

import pytest

from contract.models import EventType, Kind, Telemetry
from edge.config import load_gateway_config
from edge.sim import SimulatedHardware
from gateway.agent import GatewayAgent
from gateway.agent_settings import AgentOptions
from gateway.uplink_settings import BrokerParams
from tests.edge.helpers import FIELD_SITE, LocalBroker
from tests.gateway.conftest import FAST
from tests.gateway.helpers import clear_retained_status

GW = "gw-field"


@pytest.fixture
def field_agent(mosquitto, tmp_path):
    if GW not in mosquitto.users:
        mosquitto.add_user(GW)
        mosquitto.reload()
    local = LocalBroker()
    local.add_user("zigbee2mqtt")
    local.add_user("sc-gateway")
    local.start()
    config = load_gateway_config(FIELD_SITE, GW).with_model("co2_senseair_s8", sample_period_s=0.2)

    hardware = SimulatedHardware(config, zigbee=local.broker("zigbee2mqtt"))
    agent = GatewayAgent(
        config,
        broker=BrokerParams(port=mosquitto.port, username=GW, password=mosquitto.users[GW]),
        outbox_path=tmp_path / "outbox.sqlite3",
        hardware=hardware,
        options=AgentOptions(
            heartbeat_s=FAST.heartbeat_s,
            telemetry_period_s=FAST.telemetry_period_s,
            uplink=FAST.uplink,
            zigbee=local.broker("sc-gateway"),
        ),
    )
    yield agent
    agent.close()
    hardware.close()
    clear_retained_status(mosquitto, GW)
    local.cleanup()


def test_every_kind_of_device_reaches_the_cloud(mosquitto, field_agent, cloud_factory):
    cloud = cloud_factory(mosquitto, f"sc/v1/{GW}/event", f"sc/v1/{GW}/telemetry")
    agent = field_agent
    agent.start()
    assert agent.wait_connected(5)
    hw = agent.hardware
    hw.water_leak("water-0101")
    hw.circuit_trip("power-0101", "residual")
    hw.set_co2("co2-0201", 1450)
    bridge = agent.drivers["zsmoke-0201"]._bridge
    assert bridge.wait_subscribed(5)
    hw.zigbee_state("zsmoke-0201", smoke=True, battery=64)
    hw.zigbee_state("zsos-0101", action="emergency")

    def seen():
        got = {(e.device, e.kind, e.type) for e in cloud.events()}
        want = {
            ("water-0101", Kind.WATER, EventType.ALARM),
            ("power-0101", Kind.POWER, EventType.ALARM),
            ("zsmoke-0201", Kind.SMOKE, EventType.ALARM),
            ("zsos-0101", Kind.CALL, EventType.PRESS),
        }
        return want <= got

    cloud.wait(seen)
    local = agent.config.profile.local_alarm
    assert hw.board.level(local.led), "the Zigbee smoke alarm and call light the lamp too"

    def co2():
        batches = [Telemetry.model_validate_json(m.payload) for m in cloud.on("/telemetry")]
        return [r for b in batches for r in b.readings if r.values.co2_ppm == 1450]

    (reading, *_) = cloud.wait(co2)
    assert (reading.device, reading.kind) == ("co2-0201", Kind.AIR)
