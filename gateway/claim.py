"""`python -m gateway claim --cloud https://HOST:PORT --code XXXX-XXXX`: provision this box.

The installer is shown a one-time code on the web app's installer page (安装调试 → 生成认领码)
and types it here. The gateway fetches its bundle once over HTTPS (standard library only:
urllib and ssl, nothing more to install on the Pi), validates it exactly as a pushed config
(gateway/config_store.py) and stores it: what the agent runs in the state folder
(--state-dir, default /var/lib/smart-community, the agent's own), the secrets in root's
folder (--secrets-dir, default /etc/smart-community), where the agent cannot replace them:

    STATE/config/current.yaml  the configuration the agent runs (its site entry, models inline)
    STATE/site.yaml            its building's chain and its entry (SC_GW_SITE; no residents)
    STATE/broker-ca.pem        the CA for MQTT over TLS, when the cloud gives one
    SECRETS/credentials.json   its broker account (mode 0600)
    SECRETS/claimed.env        SC_GW_* for sc-gateway.service's EnvironmentFile (mode 0600)

Nothing is written unless the whole bundle is valid. No symbolic link in the state folder is
followed (see `store`). Progress and errors are printed in
Chinese and English; the exit status is 0 when claimed, 1 when refused or unreachable, 2 on
bad arguments. Plain http is refused unless `--insecure-http` (a lab without TLS).
"""

from __future__ import annotations

import json
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError

from contract.provisioning import ClaimRequest, ProvisioningBundle
from contract.site import Site
from gateway.config_store import CURRENT, PREVIOUS, ConfigRefused, Pushed, parse
from gateway.opened_folder import OpenedFolder, UnsafeFolder

DEFAULT_STATE_DIR = Path("/var/lib/smart-community")
#: root's: the broker account and the env file systemd reads (the agent cannot swap them)
DEFAULT_SECRETS_DIR = Path("/etc/smart-community")
CLAIMED_ENV = "claimed.env"
TIMEOUT_S = 30.0

#: What the installer reads for each refusal the cloud names (X-Claim-Error).
REFUSALS = {
    "expired": "认领码已过期，请重新生成 / claim code expired — ask for a new one",
    "used": "认领码已使用过，请重新生成 / claim code already used — ask for a new one",
    "replaced": "认领码已被更新的认领码取代，请使用最新的认领码 / "
    "claim code was replaced by a newer one — use the newest code",
    "unknown": "认领码不正确，请核对或重新生成 / claim code not recognised — check it or ask "
    "for a new one",
    "malformed": "认领码格式不对（8 位字母数字，如 7KQM-3XWP）/ "
    "not a claim code (8 letters and digits, like 7KQM-3XWP)",
    "rate_limited": "错误次数过多，请稍后再试 / too many wrong codes — wait and try again",
}


class ClaimFailed(Exception):
    """The claim did not succeed; the message is for the installer."""


@dataclass(frozen=True)
class Stored:
    gateway: str
    config: Path
    site: Path
    credentials: Path
    env_file: Path
    ca_file: Path | None
    devices: int


Say = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


def fetch(cloud: str, code: str, *, ca_file: Path | None, insecure_http: bool) -> bytes:
    """POST the code to the cloud; returns the answer's body or raises ClaimFailed."""
    parts = urlsplit(cloud)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ClaimFailed(
            f"--cloud 应为 https://主机:端口 / --cloud must be https://HOST:PORT ({cloud})"
        )
    if parts.scheme == "http" and not insecure_http:
        raise ClaimFailed(
            "拒绝使用不加密的 http（密码会明文传输）；实验环境可加 --insecure-http / "
            "refusing plain http (the password would travel in clear); add --insecure-http "
            "only in a lab"
        )
    context: ssl.SSLContext | None = None
    if parts.scheme == "https":
        try:
            context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ClaimFailed(
                f"无法读取 CA 文件 / cannot read the CA file {ca_file}: {exc}"
            ) from exc
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    url = cloud.rstrip("/") + "/api/provision/claim"
    body = ClaimRequest(code=code.strip()).model_dump_json().encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        raise ClaimFailed(_refusal(exc)) from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise ClaimFailed(
                "云端的证书不受信任，请检查 --ca-file / the cloud's certificate is not trusted "
                f"({reason.verify_message}) — check --ca-file"
            ) from exc
        if isinstance(reason, ssl.SSLError):
            raise ClaimFailed(f"TLS 握手失败 / TLS handshake failed: {reason}") from exc
        raise ClaimFailed(f"无法连接云端 / cannot reach the cloud at {cloud}: {reason}") from exc
    except (TimeoutError, OSError) as exc:
        raise ClaimFailed(f"无法连接云端 / cannot reach the cloud at {cloud}: {exc}") from exc


def _refusal(exc: urllib.error.HTTPError) -> str:
    reason = exc.headers.get("X-Claim-Error", "") if exc.headers else ""
    detail = ""
    try:
        data = json.loads(exc.read() or b"{}")
        detail = str(data.get("detail", "")) if isinstance(data, dict) else ""
    except (ValueError, OSError):
        pass
    if reason in REFUSALS:
        text = REFUSALS[reason]
        if reason == "rate_limited" and exc.headers.get("Retry-After"):
            text += f" ({exc.headers['Retry-After']} s)"
        return text
    if exc.code == 422:
        return REFUSALS["malformed"]
    return f"云端拒绝了认领 / the cloud refused the claim: HTTP {exc.code} {detail}".strip()


def validate(
    raw: bytes, *, configs_dir: Path | None, expect_gateway: str | None
) -> tuple[ProvisioningBundle, Pushed, Site]:
    """The bundle, its config and its site, each checked; raises ClaimFailed naming the
    problem."""
    try:
        bundle = ProvisioningBundle.model_validate_json(raw)
    except ValidationError as exc:
        raise ClaimFailed(
            f"云端返回的内容无效 / the cloud's answer is not a bundle: {exc}"
        ) from exc
    if expect_gateway is not None and bundle.gateway != expect_gateway:
        raise ClaimFailed(
            f"认领码属于网关 {bundle.gateway}，不是 {expect_gateway} / the code is for gateway "
            f"{bundle.gateway}, not {expect_gateway}"
        )
    try:
        pushed = parse(bundle.config, bundle.gateway, configs_dir=configs_dir, source="bundle")
    except ConfigRefused as exc:
        raise ClaimFailed(f"配置无效 / the configuration is not valid here:\n{exc}") from exc
    try:
        site = Site.model_validate(yaml.safe_load(bundle.site))
        site.gateway(bundle.gateway)
    except (ValidationError, yaml.YAMLError, KeyError) as exc:
        raise ClaimFailed(f"场所文件无效 / the site file is not valid: {exc}") from exc
    return bundle, pushed, site


def store(
    bundle: ProvisioningBundle,
    pushed: Pushed,
    *,
    state_dir: Path,
    secrets_dir: Path = DEFAULT_SECRETS_DIR,
    env_file: Path | None = None,
    configs_dir: Path | None = None,
    cloud: str = "",
) -> Stored:
    """Write everything (each file whole or not at all) and return where it went.

    Run as root, the state folder may belong to the agent's user, who could have planted
    symbolic links in it: every file is written through an opened folder, which follows no
    link (gateway/opened_folder.py). The secrets go to `secrets_dir` (root's)."""
    config_dir = state_dir / "config"
    env_path = env_file or secrets_dir / CLAIMED_ENV
    with OpenedFolder.opened(state_dir) as state, OpenedFolder.opened(secrets_dir) as vault:
        owner = state.agent()
        vault.check_private()
        env_folder = vault if env_file is None else OpenedFolder.opened(env_path.parent)
        try:
            env_folder.check_private()
            with state.subfolder("config", owner=owner) as config:
                config.keep(CURRENT, PREVIOUS, pushed.text, 0o644, owner=owner)
            site_path = state_dir / "site.yaml"
            state.write("site.yaml", bundle.site, 0o644, owner=owner)
            ca_path: Path | None = None
            if bundle.broker.ca_pem:
                ca_path = state_dir / "broker-ca.pem"
                state.write("broker-ca.pem", bundle.broker.ca_pem, 0o644)
            credentials = secrets_dir / "credentials.json"
            record = {
                "gateway": bundle.gateway,
                "username": bundle.broker.username,
                "password": bundle.broker.password,
                "broker_host": bundle.broker.host,
                "broker_port": bundle.broker.port,
                "broker_nodes": bundle.broker.nodes,
                "issued_at": bundle.issued_at.isoformat(),
                "claimed_at": datetime.now(UTC).isoformat(),
                "cloud": cloud,
            }
            vault.write("credentials.json", json.dumps(record, indent=2) + "\n", 0o600)
            env: dict[str, str] = {
                "SC_GW_GATEWAY": bundle.gateway,
                "SC_GW_SITE": str(site_path),
                "SC_GW_BROKER_HOST": bundle.broker.host,
                "SC_GW_BROKER_PORT": str(bundle.broker.port),
                "SC_GW_USERNAME": bundle.broker.username,
                "SC_GW_PASSWORD": bundle.broker.password,
                "SC_GW_OUTBOX": str(state_dir / "outbox.sqlite3"),
                "SC_GW_CONFIG_DIR": str(config_dir),
            }
            if bundle.broker.nodes:  # a cluster: every node, tried in turn
                env["SC_GW_BROKER_NODES"] = ",".join(bundle.broker.nodes)
            if bundle.broker.command_qos != 1:
                env["SC_GW_BROKER_COMMAND_QOS"] = str(bundle.broker.command_qos)
            if ca_path is not None:
                env["SC_GW_BROKER_CA_FILE"] = str(ca_path)
            if configs_dir is not None:
                env["SC_GW_CONFIGS_DIR"] = str(configs_dir)
            lines = [
                f"# written by `python -m gateway claim` for {bundle.gateway} at "
                f"{datetime.now(UTC).isoformat()}; claiming again replaces it",
                *(f"{key}={_env_value(value)}" for key, value in env.items()),
            ]
            env_folder.write(env_path.name, "\n".join(lines) + "\n", 0o600)
        finally:
            if env_folder is not vault:
                env_folder.close()
    return Stored(
        gateway=bundle.gateway,
        config=config_dir / CURRENT,
        site=site_path,
        credentials=credentials,
        env_file=env_path,
        ca_file=ca_path,
        devices=len(pushed.document.devices),
    )


def claim(
    cloud: str,
    code: str,
    *,
    ca_file: Path | None = None,
    state_dir: Path = DEFAULT_STATE_DIR,
    secrets_dir: Path = DEFAULT_SECRETS_DIR,
    env_file: Path | None = None,
    configs_dir: Path | None = None,
    expect_gateway: str | None = None,
    insecure_http: bool = False,
    say: Say = _print,
) -> Stored:
    """Fetch, validate and store; raises ClaimFailed with a message for the installer."""
    say(f"→ 正在向云端认领 / claiming at {cloud} …")
    raw = fetch(cloud, code, ca_file=ca_file, insecure_http=insecure_http)
    bundle, pushed, _site = validate(raw, configs_dir=configs_dir, expect_gateway=expect_gateway)
    say(
        f"✓ 已认领网关 / claimed gateway {bundle.gateway} "
        f"({len(pushed.document.devices)} devices, broker {bundle.broker.host}:"
        f"{bundle.broker.port}{', TLS' if bundle.broker.ca_pem else ''})"
    )
    try:
        stored = store(
            bundle,
            pushed,
            state_dir=state_dir,
            secrets_dir=secrets_dir,
            env_file=env_file,
            configs_dir=configs_dir,
            cloud=cloud,
        )
    except UnsafeFolder as exc:
        raise ClaimFailed(str(exc)) from exc
    except OSError as exc:
        raise ClaimFailed(
            f"无法写入 / cannot write {exc.filename or state_dir}: {exc.strerror} "
            "(run it with sudo?)"
        ) from exc
    say(f"✓ 配置 / config       {stored.config}")
    say(f"✓ 场所 / site         {stored.site}")
    say(f"✓ 凭据 / credentials  {stored.credentials} (0600)")
    say(f"✓ 环境 / env file     {stored.env_file} (0600)")
    if stored.ca_file is not None:
        say(f"✓ CA                 {stored.ca_file}")
    say("下一步 / next: sudo systemctl restart sc-gateway")
    return stored


def main(args: Any) -> int:
    try:
        claim(
            args.cloud,
            args.code,
            ca_file=args.ca_file,
            state_dir=args.state_dir or DEFAULT_STATE_DIR,
            secrets_dir=args.secrets_dir or DEFAULT_SECRETS_DIR,
            env_file=args.env_file,
            configs_dir=args.configs_dir,
            expect_gateway=args.gateway,
            insecure_http=args.insecure_http,
        )
    except ClaimFailed as exc:
        print(f"✗ {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


def _env_value(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ClaimFailed(f"a value of the env file has a line break: {value!r}")
    if all(ch.isalnum() or ch in "_.:/@+-,=" for ch in value):
        return value
    for ch in '\\"$`':
        value = value.replace(ch, "\\" + ch)
    return f'"{value}"'
