"""The simulated community: an embedded broker, every gateway of a site file running its
simulated devices (below the drivers: gpiozero's mock pins, a mock MCP3008, pseudo-terminals
fed PMS5003 frames), the cloud and the duty-room web app, in one process.

A scripted scenario gives the board something to show: a call button is pressed, a smoke
alarm trips, methane rises past both thresholds, and the air gets dusty. It starts when the
duty room first opens a page (the live stream), so a visitor signing in sees fresh alarms,
not ones overdue and escalated; `kill -USR1 <pid>` plays it again. The terminal says its times
in Beijing time, as the pages do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pydantic import SecretStr

from cloud.parts import Cloud, open_cloud
from cloud.serve import serve
from cloud.settings import DEFAULT_SITE, CloudSettings
from contract.site import load_site
from edge.config import load_gateway_config
from edge.sim import SimulatedHardware
from gateway.agent import GatewayAgent
from gateway.agent_settings import AgentOptions
from gateway.uplink_settings import BrokerParams, UplinkOptions
from sim import duty_seed
from sim.broker import EmbeddedBroker
from sim.link import CuttableLink
from sim.panel import DemoSimulator


@dataclass(frozen=True)
class Step:
    at_s: float
    gateway: str
    say: str
    act: Callable[[GatewayAgent], None]


def _hw(agent: GatewayAgent) -> SimulatedHardware:
    assert agent.hardware is not None, "the demo runs simulated gateways"
    return agent.hardware


SCENARIO = [
    Step(3, "gw-ld01", "1栋101 王秀英 按下一键呼叫按钮", lambda a: _hw(a).press_call("call-0101")),
    Step(6, "gw-ld02", "2栋301 烟雾报警器报警", lambda a: _hw(a).trip_smoke("smoke-0301")),
    Step(9, "gw-ld02", "2栋101 甲烷浓度升至 12 %LEL", lambda a: _hw(a).set_gas("gas-0101", 12)),
    Step(
        12,
        "gw-ld01",
        "1栋201 PM2.5 升至 180 µg/m³",
        lambda a: _hw(a).set_air("air-0201", 110, 180, 220),
    ),
    Step(15, "gw-ld02", "2栋101 甲烷浓度升至 27 %LEL", lambda a: _hw(a).set_gas("gas-0101", 27)),
    Step(25, "gw-ld02", "2栋101 甲烷回落至 3 %LEL", lambda a: _hw(a).set_gas("gas-0101", 3)),
    Step(26, "gw-ld02", "2栋301 烟雾报警器复位", lambda a: _hw(a).clear_smoke("smoke-0301")),
]


BEIJING = timezone(timedelta(hours=8))


def say(text: str) -> None:
    print(f"[{datetime.now(BEIJING):%H:%M:%S}] {text}", flush=True)


async def run_demo(
    *,
    site_file: Path = DEFAULT_SITE,
    web_port: int = 8000,
    workdir: Path | None = None,
    duration_s: float | None = None,
    password: str | None = None,
    scenario: bool = True,
) -> int:
    workdir = workdir or Path(tempfile.mkdtemp(prefix="sc-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    site = load_site(site_file)
    gateway_ids = [gw.id for gw in site.gateways]
    password = password or secrets.token_urlsafe(8)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    say(f"工作目录 / state in {workdir}")
    broker = EmbeddedBroker(workdir, gateway_ids)
    await broker.start()
    say(f"embedded MQTT broker (amqtt, MQTT 3.1.1) on 127.0.0.1:{broker.port}")
    settings = CloudSettings(
        mqtt_port=broker.port,
        mqtt_password=SecretStr(broker.passwords["cloud"]),
        database=workdir / "cloud.db",
        telemetry_url=f"sqlite:///{workdir / 'telemetry.db'}",
        site_file=site_file,
        web_port=web_port,
        session_secret=SecretStr(secrets.token_hex(16)),
        bootstrap_users={
            "duty": ("operator", SecretStr(password)),
            "leader": ("supervisor", SecretStr(password)),
            "installer": ("installer", SecretStr(password)),
            "admin": ("admin", SecretStr(password)),
            "grid": ("grid_worker", SecretStr(password)),
        },
        simulator=True,  # the simulator panel (sim/panel.py), for the supervisor and admin
    )
    agents: dict[str, GatewayAgent] = {}
    # each gateway reaches the broker through a link the simulator can cut (sim/link.py)
    links = {gw: CuttableLink(broker.port) for gw in gateway_ids}
    raised = 0
    try:
        for link in links.values():
            await link.restore()
        async with open_cloud(settings) as cloud:
            replay = asyncio.Event()
            cloud.simulator = DemoSimulator(site, agents, links, replay.set, say)
            started = asyncio.Event()
            server = asyncio.create_task(serve(cloud, started=started))
            await _first(started.wait(), server)
            await _first(cloud.ingest.connected.wait(), server)  # the gateways' events reach it
            say(f"cloud ready: {len(gateway_ids)} gateways registered in {site.street.name}")
            if await duty_seed.seed(cloud.duty):
                say("排班、平安报已预置 / a week's roster and one daily check-in seeded")
            for gw in gateway_ids:
                agents[gw] = _start_agent(site_file, gw, broker, links[gw].port, workdir)
            for gw, agent in agents.items():
                connected = await asyncio.to_thread(agent.wait_connected, 15)
                say(f"gateway {gw}: {'online' if connected else 'NOT connected'}")
            say("")
            say(f"值班室 / duty room: {cloud.web_url}")
            say(
                "登录 / sign in: duty 值班员 (operator) · leader 督导 (supervisor) ·"
                f" installer 安装人员 · admin 管理员 · grid 网格员 (/grid) — 密码均为 / all with"
                f" password {password}"
            )
            if scenario:
                say(
                    "情景在值班室打开页面后开始 /"
                    " the scenario starts once the duty room opens a page"
                )
            say(
                "模拟器面板（督导、管理员的告警看板上）/ the simulator panel (on the board, for"
                " leader and admin): press a call button, trip a smoke alarm, raise methane,"
                " cut a gateway's link, replay the scenario"
            )
            say(f"重放情景 / replay it: kill -USR1 {os.getpid()}")
            say("按 Ctrl-C 结束 / Ctrl-C to stop")
            say("")
            loop.add_signal_handler(signal.SIGUSR1, replay.set)
            scenarios = asyncio.create_task(_scenarios(agents, cloud, replay, first=scenario))
            waits = [asyncio.create_task(stop.wait()), server]
            done, _ = await asyncio.wait(
                waits, timeout=duration_s, return_when=asyncio.FIRST_COMPLETED
            )
            if server in done:
                server.result()
            scenarios.cancel()
            raised = await _summary(cloud)
            server.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await server
    finally:
        say("shutting down…")
        for agent in agents.values():
            await asyncio.to_thread(agent.stop)
            agent.close()
        for link in links.values():
            await link.cut()
        await broker.stop()
    say(f"stopped cleanly; {raised} alarms raised")
    return 0


def _start_agent(
    site_file: Path, gateway: str, broker: EmbeddedBroker, port: int, workdir: Path
) -> GatewayAgent:
    # The demo cannot wait three minutes for the methane sensor head to warm up.
    config = load_gateway_config(site_file, gateway).with_model("gas_mcp3008", warmup_s=2)
    agent = GatewayAgent(
        config,
        broker=BrokerParams(
            host="127.0.0.1",
            port=port,
            username=gateway,
            password=broker.passwords[gateway],
        ),
        outbox_path=workdir / f"{gateway}-outbox.sqlite3",
        simulate=True,
        # back within a couple of seconds once the simulator restores a cut link
        options=AgentOptions(
            heartbeat_s=30, telemetry_period_s=2, uplink=UplinkOptions(backoff_max_s=2)
        ),
    )
    agent.start()
    return agent


async def _scenarios(
    agents: dict[str, GatewayAgent], cloud: Cloud, replay: asyncio.Event, *, first: bool
) -> None:
    """The scenario once the first page is open (unless `first` is false), then again on
    every replay (SIGUSR1 or the simulator panel)."""
    if first:
        await cloud.hub.first_listener.wait()
    else:
        await replay.wait()
        replay.clear()
    while True:
        await _play(agents)
        await replay.wait()
        replay.clear()
        say("重放情景 / replaying the scenario")


async def _play(agents: dict[str, GatewayAgent]) -> None:
    start = time.monotonic()
    for step in SCENARIO:
        await asyncio.sleep(max(0.0, start + step.at_s - time.monotonic()))
        say(f"情景 / scenario: {step.say}")
        await asyncio.to_thread(step.act, agents[step.gateway])


async def _first(waiting: Awaitable[object], server: asyncio.Task[None]) -> None:
    waiter = asyncio.ensure_future(waiting)
    done, _ = await asyncio.wait({waiter, server}, return_when=asyncio.FIRST_COMPLETED)
    if server in done:
        waiter.cancel()
        server.result()


async def _summary(cloud: Cloud) -> int:
    counts = cloud.ingest.counts + cloud.announcer.counts
    say(
        f"ingest: {counts['events']} events, {counts['readings']} readings, "
        f"{counts['alarms_raised']} alarms raised, {counts['alarm_repeats']} repeats, "
        f"{sum(cloud.rejects.counts.values())} rejected"
    )
    return counts["alarms_raised"]
