"""The single box's MQTT session in a receiver process of its own (the default): killed, it is
started again and the broker delivers again what it had not acknowledged; it goes with the
cloud when the cloud is killed; commands and acknowledgements go out through it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import psutil

from cloud.transport.base import Received
from cloud.transport.mqtt_process import MqttProcessTransport
from contract import topics
from contract.models import Command
from tests.cloud.conftest import Publisher, eventually
from tests.cloud.transport.conftest import open_session
from tests.servers import REPO, Mosquitto


async def test_a_killed_receiver_is_started_again_and_gets_again_what_was_not_acknowledged(
    mosquitto: Mosquitto,
) -> None:
    transport = open_session("process", mosquitto, "test-recv", retry_min_s=0.1, retry_max_s=0.5)
    assert isinstance(transport, MqttProcessTransport)
    taken: list[Received] = []

    async def consume(batch: list[Received]) -> None:
        taken.extend(item for item in batch if item.topic == topics.event("gw-ld01"))

    running = asyncio.create_task(transport.run(consume))
    publisher = Publisher(mosquitto, "gw-ld01")
    try:
        await eventually(transport.link.connected.is_set)
        first_pid = transport.receiver_pid
        assert first_pid is not None and psutil.Process(first_pid).ppid() == os.getpid()
        publisher.publish(topics.event("gw-ld01"), b"one")
        await eventually(lambda: len(taken) == 1)

        os.kill(first_pid, signal.SIGKILL)  # taken, not stored: not acknowledged
        await eventually(lambda: not transport.link.connected.is_set())
        assert "receiver process ended" in (transport.link.last_error or "")
        await eventually(transport.link.connected.is_set)
        second_pid = transport.receiver_pid
        assert second_pid not in (None, first_pid)
        await eventually(lambda: len(taken) == 2)
        assert taken[1].payload == b"one", "the broker delivers the unacknowledged one again"

        transport.ack(taken[0])  # the dead receiver's: nothing to send it to
        assert not taken[0].acked
        transport.ack(taken[1])
        assert taken[1].acked
        await asyncio.sleep(0.2)  # the PUBACK on its way through the receiver

        assert second_pid is not None
        os.kill(second_pid, signal.SIGKILL)  # acknowledged now: not delivered a third time
        await eventually(lambda: transport.receiver_pid not in (None, second_pid))
        await eventually(transport.link.connected.is_set)
        publisher.publish(topics.event("gw-ld01"), b"two")
        await eventually(lambda: len(taken) == 3)
        assert [item.payload for item in taken] == [b"one", b"one", b"two"]
    finally:
        publisher.close()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    pids = [first_pid, second_pid]
    assert not any(psutil.pid_exists(pid) and _alive(pid) for pid in pids if pid)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_commands_go_out_through_the_receiver_and_are_refused_without_a_broker(
    tmp_path: Path,
) -> None:
    broker = Mosquitto()
    for user in ("cloud", "gw-ld01"):
        broker.add_user(user)
    broker.start()
    heard: list[tuple[str, bytes]] = []
    gateway = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"gw-{uuid.uuid4().hex}")
    gateway.username_pw_set("gw-ld01", broker.users["gw-ld01"])
    gateway.on_message = lambda _c, _u, msg: heard.append((msg.topic, bytes(msg.payload)))
    gateway.connect("127.0.0.1", broker.port)
    gateway.subscribe(topics.subscription(topics.Channel.CMD, "gw-ld01"), qos=1)
    gateway.loop_start()
    transport = open_session("process", broker, "test-cmds", retry_min_s=0.1, retry_max_s=0.5)

    async def consume(batch: list[Received]) -> None:
        for item in batch:
            transport.ack(item)

    running = asyncio.create_task(transport.run(consume))
    try:
        await eventually(transport.link.connected.is_set)
        command = Command(id="cmd-0001-test", ts=datetime.now(UTC), args={"n": 1})
        assert await transport.send_command("gw-ld01", "config", command)
        assert transport.publish_soon(topics.command("gw-ld01", "ack"), b'{"x":1}')
        await eventually(lambda: len(heard) == 2)
        assert heard[0][0] == topics.command("gw-ld01", "config")
        assert Command.model_validate_json(heard[0][1]) == command
        assert heard[1] == (topics.command("gw-ld01", "ack"), b'{"x":1}')

        broker.stop()
        await eventually(lambda: not transport.link.connected.is_set())
        assert not await transport.send_command("gw-ld01", "config", command)
        assert not transport.publish_soon(topics.command("gw-ld01", "ack"), b"{}")
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        gateway.loop_stop()
        broker.cleanup()


def test_a_cloud_killed_with_kill_9_leaves_no_receiver_holding_its_session(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """`python -m cloud` killed outright: its receiver ends by itself (the socket between them
    closes). One left behind would hold the broker session the restarted cloud needs."""
    env = dict(
        os.environ,
        SC_CLOUD_MQTT_PORT=str(mosquitto.port),
        SC_CLOUD_MQTT_PASSWORD=mosquitto.users["cloud"],
        SC_CLOUD_MQTT_CLIENT_ID=f"test-kill-{uuid.uuid4().hex[:6]}",
        SC_CLOUD_DATABASE=str(tmp_path / "cloud.db"),
        SC_CLOUD_TELEMETRY_URL=f"sqlite:///{tmp_path / 'telemetry.db'}",
        SC_CLOUD_WEB_PORT="0",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloud"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "cloud.log").open("wb"),
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("duty room: ")
        assert proc.stdout.readline() == "ingest connected\n"
        receivers = psutil.Process(proc.pid).children()
        assert len(receivers) == 1
        assert "cloud.transport.mqtt_receiver" in receivers[0].cmdline()
    finally:
        proc.kill()
        proc.wait(timeout=10)
    _, alive = psutil.wait_procs(receivers, timeout=10)
    assert not alive, "the receiver outlived the cloud"
