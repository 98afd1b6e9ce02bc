"""The fault suite's community: two gateways (`GATEWAYS`, or the ids a scenario names) wired
for a life-safety stream, their device configuration, and the `--script` files that drive their
simulated devices.

Each gateway (rpi4-standard board, devices simulated below the drivers) has one call button,
six methane detectors (relay + MCP3008 channel), eight smoke alarms (alarm contact) and one
PMS5003 air monitor: every free GPIO of the board is used. The load is a script of device
changes, spread round-robin over the detectors so that each contact stays put far longer than
its debounce time (`MIN_LEVEL_S`), plus a call-button press every `CALL_PERIOD_S`.

The device models are the shipped ones (`firmware_configs/models/`) copied with three changes,
all of them configuration a street office could choose:
- the call button's `call_open_s` is 1 s, so each press of the stream is a new call (shipped:
  600 s, a second press while a call is open is not a new call);
- the gas detector's `warmup_s` is 0, so its readings flow from the start (shipped: 180 s);
- with `compress` > 1 (a simulated day in minutes), the sampling periods are that many times
  shorter, down to the models' own lower bounds.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from contract.catalogue import CONFIGS_DIR
from contract.site import Site

STREET = {"id": "jd-jinjiang", "name": "锦江街道"}  # its supervisor is in the default rules
GATEWAYS = ("gw-f01", "gw-f02")
LIFE_SAFETY = ("call", "smoke", "gas")

CALL_PINS = {"button": 4, "led": 5}
GAS_PINS = (6, 7, 12, 13, 16, 17)  # relay contacts; MCP3008 channels 0..5
SMOKE_PINS = (18, 19, 20, 21, 22, 25, 26, 27)  # alarm contacts (23/24: the board's lamp, sounder)

#: A detector's contact stays at least this long in one state (its debounce time is 0.1 s).
MIN_LEVEL_S = 0.2
#: One call-button press this often (0.1 s long: a short press, longer than its 0.05 s debounce).
CALL_PERIOD_S = 2.0
CALL_HOLD_S = 0.1
#: The script starts this long after the agent (its drivers are running by then).
LEAD_S = 0.5


@dataclass(frozen=True)
class Device:
    id: str
    kind: str


def devices() -> list[Device]:
    """The devices of each fault gateway (the same on both)."""
    out = [Device("call-01", "call")]
    out += [Device(f"gas-{i + 1:02d}", "gas") for i in range(len(GAS_PINS))]
    out += [Device(f"smoke-{i + 1:02d}", "smoke") for i in range(len(SMOKE_PINS))]
    out.append(Device("air-01", "air"))
    return out


def _toggling() -> list[Device]:
    return [d for d in devices() if d.kind in ("gas", "smoke")]


def max_rate() -> float:
    """The highest life-safety event rate one gateway's devices can make (events/s)."""
    return len(_toggling()) / MIN_LEVEL_S + 1 / CALL_PERIOD_S


def build_site(ids: Sequence[str] = GATEWAYS) -> dict[str, Any]:
    """The community with one building (four homes) per gateway of `ids`."""
    buildings, gateways = [], []
    for n, gateway in enumerate(ids, start=1):
        homes = [f"h-f{n:02d}-{h:02d}" for h in range(1, 5)]
        buildings.append(
            {
                "id": f"ld-f{n:02d}",
                "name": f"故障演练小区{n}栋",
                "address": f"演练路{n}号",
                "homes": [{"id": h, "name": f"1单元{i + 1:02d}01"} for i, h in enumerate(homes)],
            }
        )
        specs: list[dict[str, Any]] = [
            {"id": "call-01", "model": "call_button_gpio", "home": homes[0], "pins": CALL_PINS}
        ]
        for i, pin in enumerate(GAS_PINS):
            specs.append(
                {
                    "id": f"gas-{i + 1:02d}",
                    "model": "gas_mcp3008",
                    "home": homes[i % len(homes)],
                    "pins": {"relay": pin},
                    "adc_channel": i,
                }
            )
        for i, pin in enumerate(SMOKE_PINS):
            specs.append(
                {
                    "id": f"smoke-{i + 1:02d}",
                    "model": "smoke_dry_contact",
                    "home": homes[i % len(homes)],
                    "pins": {"alarm": pin},
                }
            )
        specs.append(
            {"id": "air-01", "model": "air_pms5003", "home": homes[1], "port": "/dev/serial0"}
        )
        gateways.append(
            {
                "id": gateway,
                "building": f"ld-f{n:02d}",
                "profile": "rpi4-standard",
                "devices": specs,
            }
        )
    site = {
        "street": STREET,
        "communities": [
            {
                "id": "sq-faults",
                "name": "故障演练社区",
                "grids": [
                    {
                        "id": "wg-faults",
                        "name": "演练网格",
                        "worker": {"name": "演练网格员", "phone": "138 0000 7777"},
                        "buildings": buildings,
                    }
                ],
            }
        ],
        "gateways": gateways,
    }
    Site.model_validate(site)
    return site


def write_site(path: Path, ids: Sequence[str] = GATEWAYS) -> Path:
    path.write_text(
        "# Generated by the fault suite (tests/faults/site.py).\n"
        + yaml.safe_dump(build_site(ids), allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    return path


def write_configs(folder: Path, *, compress: float = 1.0) -> Path:
    """A firmware_configs/ folder for the agents: the shipped models and profiles, changed as
    the module says. Returns the folder (for `--configs-dir`)."""
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(CONFIGS_DIR / "profiles", folder / "profiles")
    shutil.copytree(CONFIGS_DIR / "models", folder / "models")

    def edit(name: str, **changes: float) -> None:
        path = folder / "models" / f"{name}.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data.update(changes)
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")

    edit("call_button_gpio", call_open_s=1.0)
    gas = yaml.safe_load((CONFIGS_DIR / "models" / "gas_mcp3008.yaml").read_text("utf-8"))
    air = yaml.safe_load((CONFIGS_DIR / "models" / "air_pms5003.yaml").read_text("utf-8"))
    edit("gas_mcp3008", warmup_s=0, sample_period_s=max(0.05, gas["sample_period_s"] / compress))
    if compress > 1:
        edit("air_pms5003", sample_period_s=max(0.05, air["sample_period_s"] / compress))
    return folder


def load_script(rate: float, duration_s: float) -> list[dict[str, Any]]:
    """Steps making about `rate` life-safety events a second for `duration_s` seconds: the
    detectors trip and clear in turn, the call button is pressed every CALL_PERIOD_S."""
    if duration_s <= 0:
        return []
    call_rate = 1 / CALL_PERIOD_S
    if not call_rate < rate <= max_rate():
        raise ValueError(
            f"rate must be above {call_rate} and at most {max_rate():.0f} events/s per gateway"
            f" (each of the {len(_toggling())} detectors stays {MIN_LEVEL_S} s in each state)"
        )
    toggling = _toggling()
    step_s = 1 / (rate - call_rate)
    steps: list[tuple[float, dict[str, Any]]] = []
    tripped: dict[str, bool] = {}
    i = 0
    while (at := LEAD_S + i * step_s) < LEAD_S + duration_s:
        device = toggling[i % len(toggling)]
        on = not tripped.get(device.id, False)
        tripped[device.id] = on
        step: dict[str, Any]
        if device.kind == "smoke":
            step = {"do": "trip_smoke" if on else "clear_smoke", "device": device.id}
        else:
            step = {"do": "gas_relay", "device": device.id, "alarm": on}
        steps.append((at, step))
        i += 1
    t = LEAD_S + CALL_PERIOD_S / 2
    while t < LEAD_S + duration_s:
        steps.append((t, {"do": "press_call", "device": "call-01", "hold_s": CALL_HOLD_S}))
        t += CALL_PERIOD_S
    steps.sort(key=lambda s: s[0])
    return [{"at": round(at, 4), **step} for at, step in steps]


def write_script(path: Path, rate: float, duration_s: float) -> Path:
    path.write_text(yaml.safe_dump(load_script(rate, duration_s), sort_keys=False))
    return path
