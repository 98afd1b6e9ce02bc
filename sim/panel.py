"""The demo's simulator (the injection API of cloud/simulation.py), on the demo's own parts: the
simulated hardware below each gateway's drivers, and each gateway's link to the broker
(sim/link.py). Nothing here talks to the cloud: what it does reaches the board the way a real
device's alarm would."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from cloud.errors import NotFound, Refused
from cloud.simulation import (
    DEVICE_ACTIONS,
    GATEWAY_ACTIONS,
    Injected,
    Injection,
    SimAction,
    SimDevice,
    SimGateway,
    SimPanel,
)
from contract.site import Site
from edge.sim import SimulatedHardware
from gateway.agent import GatewayAgent
from sim.link import CuttableLink

#: What each action says it did: (zh, en), with {where} (building, home, device) and {value}.
SAYS: dict[SimAction, tuple[str, str]] = {
    SimAction.PRESS_CALL: ("{where} 按下一键呼叫按钮", "{where}: call button pressed"),
    SimAction.SMOKE_ALARM: ("{where} 烟雾报警器报警", "{where}: smoke alarm tripped"),
    SimAction.SMOKE_CLEAR: ("{where} 烟雾报警器复位", "{where}: smoke alarm reset"),
    SimAction.METHANE: ("{where} 甲烷浓度 {value} %LEL", "{where}: methane at {value} %LEL"),
    SimAction.CUT_LINK: ("{where} 网络中断", "{where}: link cut"),
    SimAction.RESTORE_LINK: ("{where} 网络恢复", "{where}: link restored"),
    SimAction.REPLAY: ("重放演示情景", "the demo's scenario, from its start"),
}


class DemoSimulator:
    def __init__(
        self,
        site: Site,
        agents: dict[str, GatewayAgent],
        links: dict[str, CuttableLink],
        replay: Callable[[], None],
        say: Callable[[str], None],
    ) -> None:
        self.agents = agents
        self.say = say
        self.links = links
        self.replay = replay
        self._homes = {
            home.id: (building.name, home.name)
            for community in site.communities
            for grid in community.grids
            for building in grid.buildings
            for home in building.homes
        }
        self._buildings = {
            building.id: building.name
            for community in site.communities
            for grid in community.grids
            for building in grid.buildings
        }

    def panel(self) -> SimPanel:
        gateways, devices = [], []
        for gw, agent in self.agents.items():
            spec = agent.config.spec
            gateways.append(
                SimGateway(
                    gateway=gw,
                    building=self._buildings.get(spec.building, spec.building),
                    link_up=self.links[gw].up,
                )
            )
            for device in spec.devices:
                kind = str(agent.config.models[device.model].kind)
                if kind not in DEVICE_ACTIONS:
                    continue
                building, home = self._homes.get(device.home or "", ("", ""))
                devices.append(
                    SimDevice(
                        gateway=gw,
                        device=device.id,
                        kind=kind,
                        building=building,
                        home=home,
                        actions=list(DEVICE_ACTIONS[kind]),
                    )
                )
        return SimPanel(gateways=gateways, devices=devices)

    async def inject(self, injection: Injection) -> Injected:
        action = injection.action
        where = ""
        if action is SimAction.REPLAY:
            self.replay()
        elif action in GATEWAY_ACTIONS:
            link = self._link(injection.gateway or "")
            where = injection.gateway or ""
            await (link.cut() if action is SimAction.CUT_LINK else link.restore())
        else:
            hardware, where = self._device(injection, action)
            device = injection.device or ""
            if action is SimAction.PRESS_CALL:
                await asyncio.to_thread(hardware.press_call, device)
            elif action is SimAction.SMOKE_ALARM:
                await asyncio.to_thread(hardware.trip_smoke, device)
            elif action is SimAction.SMOKE_CLEAR:
                await asyncio.to_thread(hardware.clear_smoke, device)
            else:
                await asyncio.to_thread(hardware.set_gas, device, injection.value or 0.0)
        zh, en = SAYS[action]
        value = f"{injection.value:g}" if injection.value is not None else ""
        done = Injected(
            action=action,
            zh=zh.format(where=where, value=value),
            en=en.format(where=where, value=value),
        )
        self.say(f"模拟器 / simulator: {done.zh}")
        return done

    def _link(self, gateway: str) -> CuttableLink:
        link = self.links.get(gateway)
        if link is None:
            raise NotFound.said(f"没有网关 {gateway}", f"no gateway {gateway}")
        return link

    def _device(self, injection: Injection, action: SimAction) -> tuple[SimulatedHardware, str]:
        gateway, device_id = injection.gateway or "", injection.device or ""
        agent = self.agents.get(gateway)
        spec = (
            next((d for d in agent.config.spec.devices if d.id == device_id), None)
            if agent
            else None
        )
        if agent is None or agent.hardware is None or spec is None:
            raise NotFound.said(
                f"网关 {gateway} 上没有设备 {device_id}", f"no device {device_id} on {gateway}"
            )
        kind = str(agent.config.models[spec.model].kind)
        if action not in DEVICE_ACTIONS.get(kind, ()):
            raise Refused.said(
                f"设备 {device_id} 不能执行 {action.value}",
                f"device {device_id} ({kind}) has no action {action.value}",
            )
        building, home = self._homes.get(spec.home or "", ("", ""))
        return agent.hardware, f"{building} {home} {device_id}".strip()
