"""`python -m gateway claim --cloud https://HOST:PORT --code XXXX-XXXX`: provision this box.

The installer is shown a one-time code on the web app's installer page (安装调试 → 生成认领码)
and types it here. The gateway fetches its bundle once over HTTPS (standard library only:
urllib and ssl, nothing more to install on the Pi), validates it exactly as a pushed config
(gateway/config_store.py) and stores it in the state folder (default /var/lib/smart-community):

    config/current.yaml   the configuration the agent runs (its site entry, models inline)
    site.yaml             its building's chain and its entry (SC_GW_SITE; no residents)
    broker-ca.pem         the CA for MQTT over TLS, when the cloud gives one
    credentials.json      its broker account (mode 0600)
    gateway.env           SC_GW_* for sc-gateway.service's EnvironmentFile (mode 0600)

Nothing is written unless the whole bundle is valid. Progress and errors are printed in
Chinese and English; the exit status is 0 when claimed, 1 when refused or unreachable, 2 on
bad arguments. Plain http is refused unless `--insecure-http` (a lab without TLS).
"""

from __future__ import annotations

import json
import os
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
from gateway.config_store import ConfigRefused, ConfigStore, Pushed, parse

DEFAULT_STATE_DIR = Path("/var/lib/smart-community")
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
    env_file: Path | None = None,
    configs_dir: Path | None = None,
    cloud: str = "",
) -> Stored:
    """Write everything (each file whole or not at all) and return where it went."""
    state_dir.mkdir(parents=True, exist_ok=True)
    config_dir = state_dir / "config"
    ConfigStore(config_dir, configs_dir=configs_dir).keep(pushed)
    site_path = state_dir / "site.yaml"
    _write(site_path, bundle.site, 0o644)
    ca_path: Path | None = None
    if bundle.broker.ca_pem:
        ca_path = state_dir / "broker-ca.pem"
        _write(ca_path, bundle.broker.ca_pem, 0o644)
    credentials = state_dir / "credentials.json"
    record = {
        "gateway": bundle.gateway,
        "username": bundle.broker.username,
        "password": bundle.broker.password,
        "broker_host": bundle.broker.host,
        "broker_port": bundle.broker.port,
        "issued_at": bundle.issued_at.isoformat(),
        "claimed_at": datetime.now(UTC).isoformat(),
        "cloud": cloud,
    }
    _write(credentials, json.dumps(record, indent=2) + "\n", 0o600)
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
    if ca_path is not None:
        env["SC_GW_BROKER_CA_FILE"] = str(ca_path)
    if configs_dir is not None:
        env["SC_GW_CONFIGS_DIR"] = str(configs_dir)
    env_path = env_file or state_dir / "gateway.env"
    lines = [
        f"# written by `python -m gateway claim` for {bundle.gateway} at "
        f"{datetime.now(UTC).isoformat()}; claiming again replaces it",
        *(f"{key}={_env_value(value)}" for key, value in env.items()),
    ]
    env_path.parent.mkdir(parents=True, exist_ok=True)
    _write(env_path, "\n".join(lines) + "\n", 0o600)
    _hand_over(state_dir, config_dir)
    return Stored(
        gateway=bundle.gateway,
        config=config_dir / "current.yaml",
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
            env_file=env_file,
            configs_dir=configs_dir,
            cloud=cloud,
        )
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


def _write(path: Path, text: str, mode: int) -> None:
    """Whole or not at all, with `mode` from the start (no moment of a wider mode)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _hand_over(state_dir: Path, config_dir: Path) -> None:
    """Run as root into a state folder owned by the agent's user: give the config folder to
    that user, so the agent can replace it on `cmd/config` (secrets stay root's)."""
    if os.geteuid() != 0:
        return
    owner = state_dir.stat()
    if owner.st_uid == 0:
        return
    for path in (config_dir, *config_dir.iterdir(), state_dir / "site.yaml"):
        os.chown(path, owner.st_uid, owner.st_gid)
