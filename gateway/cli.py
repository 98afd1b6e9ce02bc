"""`python -m gateway run|check …`: the gateway process."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from contract.site import ConfigFileError
from edge.config import GatewayConfig, load_gateway_config
from gateway.agent import GatewayAgent
from gateway.agent_settings import AgentOptions
from gateway.config_store import CURRENT, ConfigRefused, ConfigStore, parse
from gateway.logs import setup_logging
from gateway.metrics import MetricsServer
from gateway.script import ScriptRunner, load_script
from gateway.settings import GatewaySettings
from gateway.uplink_settings import UplinkOptions

log = logging.getLogger("gateway")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gateway",
        description="Smart-community gateway agent. Every option can also be set in the "
        "environment as SC_GW_<NAME> (e.g. SC_GW_PASSWORD); the command line wins.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("run", "run the agent until SIGTERM / Ctrl-C"),
        ("check", "validate the site, profile and models for one gateway, then exit"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--site", type=Path)
        cmd.add_argument("--gateway")
        cmd.add_argument("--configs-dir", type=Path, help="firmware_configs/ folder")
        if name == "check":
            cmd.add_argument(
                "--config-dir", type=Path, help="also check the stored (claimed/pushed) config"
            )
            continue
        cmd.add_argument("--broker-host")
        cmd.add_argument("--broker-port", type=int)
        cmd.add_argument(
            "--broker-nodes",
            help="a clustered broker's nodes, HOST:PORT,HOST:PORT,… (tried in turn)",
        )
        cmd.add_argument(
            "--broker-command-qos", type=int, choices=[0, 1], help="0 for a RabbitMQ cluster"
        )
        cmd.add_argument("--broker-ca-file", type=Path, help="MQTT over TLS, trusting this CA")
        cmd.add_argument("--username")
        cmd.add_argument("--password")
        cmd.add_argument("--outbox", type=Path, help="SQLite outbox file")
        cmd.add_argument("--outbox-budget-mb", type=float)
        cmd.add_argument("--config-dir", type=Path, help="where pushed configs are kept")
        cmd.add_argument("--zigbee-host")
        cmd.add_argument("--zigbee-port", type=int)
        cmd.add_argument("--zigbee-username")
        cmd.add_argument("--zigbee-password")
        cmd.add_argument("--simulate", action="store_const", const=True)
        cmd.add_argument("--script", type=Path, help="timed simulator steps (YAML)")
        cmd.add_argument("--heartbeat-s", type=float)
        cmd.add_argument("--telemetry-period-s", type=float)
        cmd.add_argument("--backoff-max-s", type=float)
        cmd.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
        cmd.add_argument("--metrics-port", type=int, help="serve /metrics for Prometheus here")
        cmd.add_argument("--metrics-host", help="where /metrics listens (default 127.0.0.1)")
    _claim_parser(sub)
    return parser


def _claim_parser(sub: Any) -> None:
    cmd = sub.add_parser(
        "claim", help="provision this gateway with a one-time claim code (over HTTPS)"
    )
    cmd.add_argument("--cloud", required=True, help="the cloud, https://HOST:PORT")
    cmd.add_argument("--code", required=True, help="the claim code shown to the installer")
    cmd.add_argument("--ca-file", type=Path, help="CA for the cloud's HTTPS (default: system's)")
    cmd.add_argument("--state-dir", type=Path, help="default /var/lib/smart-community")
    cmd.add_argument(
        "--secrets-dir", type=Path, help="root's folder for the credentials (/etc/smart-community)"
    )
    cmd.add_argument("--env-file", type=Path, help="default SECRETS_DIR/claimed.env")
    cmd.add_argument("--configs-dir", type=Path, help="firmware_configs/ folder")
    cmd.add_argument("--gateway", help="refuse a code that is for another gateway")
    cmd.add_argument("--insecure-http", action="store_true", help="allow plain http (a lab only)")


def _check_stored(folder: Path, gateway: str, configs_dir: Path | None) -> int:
    """`check --config-dir`: the stored config (claimed or pushed), validated as at start."""
    current = folder / CURRENT
    if not current.exists():
        print(f"{current}: no stored config (the site file's entry is run)")
        return 0
    try:
        pushed = parse(
            current.read_text(encoding="utf-8"),
            gateway,
            configs_dir=configs_dir,
            source=str(current),
        )
    except (OSError, ConfigRefused) as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"{current}: gateway {gateway}: {len(pushed.document.devices)} devices ok")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "claim":
        from gateway.claim import main as claim_main

        return claim_main(args)
    given: dict[str, Any] = {
        k: v for k, v in vars(args).items() if v is not None and k != "command"
    }
    if args.command == "check":
        try:
            config = load_gateway_config(
                given["site"], given["gateway"], configs_dir=given.get("configs_dir")
            )
        except KeyError as exc:
            print(f"--{exc.args[0]} is required", file=sys.stderr)
            return 2
        except ConfigFileError as exc:
            print(exc, file=sys.stderr)
            return 2
        print(
            f"{config.source}: gateway {config.gateway_id}: {len(config.spec.devices)} devices ok"
        )
        if "config_dir" in given:
            return _check_stored(given["config_dir"], given["gateway"], given.get("configs_dir"))
        return 0
    try:
        settings = GatewaySettings(**given)
    except ValidationError as exc:
        print(f"bad settings:\n{exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    return run(settings)


def load_config(settings: GatewaySettings) -> GatewayConfig:
    """The configuration to run: the one the cloud pushed last (kept in the state folder),
    else this gateway's entry of the site file. Raises ConfigFileError."""
    store = ConfigStore(settings.state_dir(), configs_dir=settings.configs_dir)
    pushed = store.load(settings.gateway)
    if pushed is not None:
        log.info(
            "running the pushed config path=%s version=%s",
            store.current,
            pushed.document.version or "(none)",
        )
        return pushed.config
    return load_gateway_config(settings.site, settings.gateway, configs_dir=settings.configs_dir)


def run(settings: GatewaySettings) -> int:
    try:
        config = load_config(settings)
    except ConfigFileError as exc:
        log.error("bad configuration error=%r", str(exc))
        print(exc, file=sys.stderr)
        return 2
    agent = GatewayAgent(
        config,
        broker=settings.broker_params(),
        outbox_path=settings.outbox,
        simulate=settings.simulate,
        options=AgentOptions(
            heartbeat_s=settings.heartbeat_s,
            telemetry_period_s=settings.telemetry_period_s,
            uplink=UplinkOptions(backoff_max_s=settings.backoff_max_s),
            outbox_budget_bytes=int(settings.outbox_budget_mb * 1024 * 1024),
            zigbee=settings.zigbee_broker(),
            config_dir=settings.state_dir(),
            configs_dir=settings.configs_dir,
        ),
    )
    runner: ScriptRunner | None = None
    if settings.script is not None:
        assert agent.hardware is not None
        try:
            steps = load_script(settings.script, agent.hardware)
        except ConfigFileError as exc:
            print(exc, file=sys.stderr)
            agent.close()
            return 2
        runner = ScriptRunner(steps, agent.hardware)

    stop = threading.Event()
    reload = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal received signal=%s", signal.Signals(signum).name)
        stop.set()

    def on_hup(_signum: int, _frame: Any) -> None:
        reload.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hup)
    try:
        agent.start()
    except Exception as exc:  # e.g. no GPIO here (run with --simulate off the Pi)
        log.exception("agent could not start error=%r", str(exc))
        agent.close()
        return 1
    exporter: MetricsServer | None = None
    if settings.metrics_port is not None:
        exporter = MetricsServer(agent, settings.metrics_host, settings.metrics_port)
        log.info("metrics served url=http://%s:%d/metrics", settings.metrics_host, exporter.port)
    if runner is not None:
        runner.start()
    while not stop.wait(0.5):
        if reload.is_set():
            reload.clear()
            _reload(agent, settings)
    if runner is not None:
        runner.stop()
    if exporter is not None:
        exporter.close()
    agent.close()
    return 0


def _reload(agent: GatewayAgent, settings: GatewaySettings) -> None:
    """SIGHUP (`systemctl reload sc-gateway`): read the configuration files again; a bad one
    is logged and the running one stays. The outbox is not touched."""
    try:
        config = load_config(settings)
    except ConfigFileError as exc:
        log.error("reload refused, the running config stays error=%r", str(exc))
        return
    try:
        agent.config_push.reload(config)
    except Exception:
        log.exception("reload failed")
