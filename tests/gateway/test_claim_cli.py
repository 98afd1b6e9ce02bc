"""`python -m gateway claim` as the installer runs it on the box, against the real cloud
served over HTTPS (a trustme certificate) and a Mosquitto whose accounts the cloud keeps:
the files it writes and their modes, `python -m gateway check` accepting them, the agent
running from them over MQTT/TLS, the readable refusals (wrong CA, expired code, http), and,
run as root into a folder the agent owns, symbolic links planted there never followed."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.cloud.conftest import PASSWORDS, RunningCloud, eventually, running_cloud
from tests.security.conftest import (  # noqa: F401  (fixtures: a broker the cloud manages)
    Certs,
    broker,
    certs,
    managed_settings,
)
from tests.security.helpers import can_connect, trusting
from tests.servers import REPO, Mosquitto


@pytest.fixture
async def https_cloud(
    tmp_path: Path, broker: Mosquitto, certs: Certs
) -> AsyncIterator[RunningCloud]:
    """The cloud on HTTPS; it tells gateways to use the broker's TLS listener and its CA."""
    settings = managed_settings(
        tmp_path / "cloud",
        broker,
        web_tls_cert_file=certs.files.cert,
        web_tls_key_file=certs.files.key,
        gateway_mqtt_port=broker.tls_port,
        gateway_mqtt_ca_file=certs.files.ca,
    )
    async with running_cloud(settings) as running:
        assert running.url.startswith("https://")
        yield running


async def installer(cloud: RunningCloud, ca: Path) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=cloud.url, verify=trusting(ca), timeout=10)
    resp = await client.post("/api/login", json={"username": "inst", "password": PASSWORDS["inst"]})
    resp.raise_for_status()
    return client


async def new_code(cloud: RunningCloud, ca: Path, gateway: str = "gw-ld01") -> str:
    client = await installer(cloud, ca)
    try:
        resp = await client.post("/api/provision/codes", json={"gateway": gateway})
        resp.raise_for_status()
        return str(resp.json()["code"])
    finally:
        await client.aclose()


async def gateway_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "gateway", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


async def test_claim_stores_a_config_check_accepts_and_the_agent_runs_on_it(
    https_cloud: RunningCloud, broker: Mosquitto, certs: Certs, tmp_path: Path
) -> None:
    state, vault = tmp_path / "state", tmp_path / "etc"
    code = await new_code(https_cloud, certs.files.ca)
    done = await gateway_cli(
        "claim",
        "--cloud",
        https_cloud.url,
        "--code",
        code,
        "--ca-file",
        str(certs.files.ca),
        "--state-dir",
        str(state),
        "--secrets-dir",
        str(vault),
    )
    assert done.returncode == 0, done.stderr
    assert "claimed gateway gw-ld01" in done.stdout
    assert "已认领网关" in done.stdout
    assert "systemctl restart sc-gateway" in done.stdout

    # the files, with modes: secrets readable by the owner only, outside the state folder
    env_file, credentials = vault / "claimed.env", vault / "credentials.json"
    assert mode(env_file) == 0o600
    assert mode(credentials) == 0o600
    assert mode(state / "config" / "current.yaml") == 0o644
    assert mode(state / "site.yaml") == 0o644
    assert sorted(p.name for p in state.iterdir()) == ["broker-ca.pem", "config", "site.yaml"]
    assert (state / "broker-ca.pem").read_text() == certs.files.ca.read_text()
    env = read_env(env_file)
    assert env["SC_GW_GATEWAY"] == "gw-ld01"
    assert env["SC_GW_SITE"] == str(state / "site.yaml")
    assert env["SC_GW_BROKER_PORT"] == str(broker.tls_port)
    assert env["SC_GW_BROKER_CA_FILE"] == str(state / "broker-ca.pem")
    assert env["SC_GW_CONFIG_DIR"] == str(state / "config")
    assert env["SC_GW_USERNAME"] == "gw-ld01"
    password = env["SC_GW_PASSWORD"]
    assert yaml.safe_load(credentials.read_text())["password"] == password
    assert password not in done.stdout + done.stderr  # never printed
    assert "王秀英" not in (state / "site.yaml").read_text()  # no residents on the box

    # `check` accepts the site file and the stored config, as at start-up
    checked = await gateway_cli(
        "check",
        "--site",
        env["SC_GW_SITE"],
        "--gateway",
        "gw-ld01",
        "--config-dir",
        env["SC_GW_CONFIG_DIR"],
    )
    assert checked.returncode == 0, checked.stderr
    assert f"{state / 'config' / 'current.yaml'}: gateway gw-ld01: 4 devices ok" in checked.stdout

    # the credentials log in over TLS with the stored CA
    tls = trusting(state / "broker-ca.pem")
    assert await eventually(lambda: can_connect(broker.tls_port, "gw-ld01", password, tls=tls))

    # and the agent runs from the env file alone (as sc-gateway.service does): online
    log = tmp_path / "agent.log"
    with log.open("wb") as err:
        agent = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "gateway", "run", "--simulate", "--heartbeat-s", "3600"],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:

        async def online() -> bool:
            assert agent.poll() is None, log.read_text()
            states = {g["id"]: g["state"] for g in await https_cloud.cloud.book.gateways()}
            return states.get("gw-ld01") == "online"

        assert await eventually(online, timeout=30)
        assert "running the pushed config" in log.read_text()

        # the box fails and a new one is claimed (same gateway id, a new code): the old box's
        # password stops working at once, the new one's works
        new_state = tmp_path / "new-box"
        again = await gateway_cli(
            "claim",
            "--cloud",
            https_cloud.url,
            "--code",
            await new_code(https_cloud, certs.files.ca),
            "--ca-file",
            str(certs.files.ca),
            "--state-dir",
            str(new_state),
            "--secrets-dir",
            str(new_state / "etc"),
        )
        assert again.returncode == 0, again.stderr
        new_password = read_env(new_state / "etc" / "claimed.env")["SC_GW_PASSWORD"]
        assert new_password != password
        assert await eventually(
            lambda: can_connect(broker.tls_port, "gw-ld01", new_password, tls=tls)
        )
        assert not await can_connect(broker.tls_port, "gw-ld01", password, tls=tls)
    finally:
        agent.terminate()
        await asyncio.to_thread(agent.wait, 15)


async def test_a_wrong_ca_fails_readably_and_writes_nothing(
    https_cloud: RunningCloud, certs: Certs, tmp_path: Path
) -> None:
    code = await new_code(https_cloud, certs.files.ca)
    state = tmp_path / "state"
    done = await gateway_cli(
        "claim",
        "--cloud",
        https_cloud.url,
        "--code",
        code,
        "--ca-file",
        str(certs.other_ca),
        "--state-dir",
        str(state),
    )
    assert done.returncode == 1
    assert "the cloud's certificate is not trusted" in done.stderr
    assert "check --ca-file" in done.stderr
    assert "Traceback" not in done.stderr
    assert not state.exists()
    # the code was never sent, so it still works with the right CA
    again = await gateway_cli(
        "claim",
        "--cloud",
        https_cloud.url,
        "--code",
        code,
        "--ca-file",
        str(certs.files.ca),
        "--state-dir",
        str(state),
        "--secrets-dir",
        str(tmp_path / "etc"),
    )
    assert again.returncode == 0, again.stderr


async def test_an_expired_code_prints_why_and_exits_non_zero(
    https_cloud: RunningCloud, certs: Certs, tmp_path: Path
) -> None:
    code = await new_code(https_cloud, certs.files.ca)
    ttl = https_cloud.cloud.settings.claim_code_ttl_s
    https_cloud.cloud.db.clock = lambda: time.time() + ttl + 1
    state = tmp_path / "state"
    done = await gateway_cli(
        "claim",
        "--cloud",
        https_cloud.url,
        "--code",
        code,
        "--ca-file",
        str(certs.files.ca),
        "--state-dir",
        str(state),
    )
    assert done.returncode == 1
    assert "claim code expired — ask for a new one" in done.stderr
    assert "认领码已过期" in done.stderr
    assert not state.exists()


async def test_reuse_and_wrong_codes_print_why(
    https_cloud: RunningCloud, certs: Certs, tmp_path: Path
) -> None:
    code = await new_code(https_cloud, certs.files.ca)
    common = (
        *("--cloud", https_cloud.url, "--ca-file", str(certs.files.ca)),
        *("--secrets-dir", str(tmp_path / "etc")),
    )
    first = await gateway_cli("claim", *common, "--code", code, "--state-dir", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    second = await gateway_cli("claim", *common, "--code", code, "--state-dir", str(tmp_path / "b"))
    assert second.returncode == 1
    assert "claim code already used — ask for a new one" in second.stderr
    wrong = await gateway_cli(
        "claim", *common, "--code", "2345-6789", "--state-dir", str(tmp_path / "c")
    )
    assert wrong.returncode == 1
    assert "claim code not recognised" in wrong.stderr
    other = await gateway_cli(
        "claim",
        *common,
        "--code",
        await new_code(https_cloud, certs.files.ca, "gw-ld02"),
        "--gateway",
        "gw-ld01",
        "--state-dir",
        str(tmp_path / "d"),
    )
    assert other.returncode == 1
    assert "the code is for gateway gw-ld02, not gw-ld01" in other.stderr
    assert not (tmp_path / "d").exists()


async def test_plain_http_is_refused_unless_asked_for(tmp_path: Path) -> None:
    done = await gateway_cli(
        "claim",
        "--cloud",
        "http://127.0.0.1:9",
        "--code",
        "2345-6789",
        "--state-dir",
        str(tmp_path / "s"),
    )
    assert done.returncode == 1
    assert "refusing plain http" in done.stderr
    assert "--insecure-http" in done.stderr
    lab = await gateway_cli(
        "claim",
        "--cloud",
        "http://127.0.0.1:9",
        "--code",
        "2345-6789",
        "--insecure-http",
        "--state-dir",
        str(tmp_path / "s"),
    )
    assert lab.returncode == 1
    assert "cannot reach the cloud at http://127.0.0.1:9" in lab.stderr


AGENT = (65534, 65534)  # nobody: the agent's user owning the state folder, as on the box
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the claim runs as root on the box")


def precious(folder: Path, name: str) -> Path:
    """A root-only file outside the state folder that a planted link points at."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(f"{name}: root's, never to be touched\n")
    path.chmod(0o600)
    return path


def untouched(path: Path) -> bool:
    st = path.stat()
    return (
        path.read_text() == f"{path.name}: root's, never to be touched\n"
        and stat.S_IMODE(st.st_mode) == 0o600
        and (st.st_uid, st.st_gid) == (0, 0)
    )


async def claim_into(
    cloud: RunningCloud, certs: Certs, state: Path, vault: Path
) -> subprocess.CompletedProcess[str]:
    return await gateway_cli(
        "claim",
        "--cloud",
        cloud.url,
        "--code",
        await new_code(cloud, certs.files.ca),
        "--ca-file",
        str(certs.files.ca),
        "--state-dir",
        str(state),
        "--secrets-dir",
        str(vault),
    )


@as_root
async def test_links_planted_in_the_agents_state_folder_are_not_followed(
    https_cloud: RunningCloud, certs: Certs, tmp_path: Path
) -> None:
    """The agent's user owns the state folder and plants links at the names the claim writes,
    at the temporary names it used to write through, and in config/: root neither writes,
    truncates, chmods nor chowns what they point at; it replaces the links themselves."""
    outside = tmp_path / "outside"
    state, vault = tmp_path / "state", tmp_path / "etc"
    (state / "config").mkdir(parents=True)
    links = {
        state / "site.yaml": precious(outside, "shadow"),
        state / ".site.yaml.tmp": precious(outside, "passwd"),
        state / "broker-ca.pem": precious(outside, "sudoers"),
        state / "config" / "current.yaml": precious(outside, "crontab"),
        state / "config" / ".current.yaml.tmp": precious(outside, "hosts"),
        state / "config" / "x": precious(outside, "root-key"),
    }
    for link, target in links.items():
        link.symlink_to(target)
    for path in (state, state / "config"):
        os.chown(path, *AGENT)

    done = await claim_into(https_cloud, certs, state, vault)
    assert done.returncode == 0, done.stderr

    for target in links.values():
        assert untouched(target), target
    # the names the claim writes are now its own regular files, with the intended modes;
    # the agent's user gets what it replaces itself, root keeps the rest
    for path, want_mode, owner in (
        (state / "site.yaml", 0o644, AGENT),
        (state / "config" / "current.yaml", 0o644, AGENT),
        (state / "broker-ca.pem", 0o644, (0, 0)),
        (vault / "credentials.json", 0o600, (0, 0)),
        (vault / "claimed.env", 0o600, (0, 0)),
    ):
        st = path.lstat()
        assert stat.S_ISREG(st.st_mode), path
        assert (stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)) == (want_mode, owner), path
    assert "\nid: gw-ld01\n" in (state / "config" / "current.yaml").read_text()
    assert certs.files.ca.read_text() == (state / "broker-ca.pem").read_text()
    # the link that was current.yaml became previous.yaml, still a link, its target unread
    assert (state / "config" / "previous.yaml").readlink() == outside / "crontab"
    # the planted links at the old temporary names are left as they were, and none of ours
    assert (state / ".site.yaml.tmp").is_symlink()
    leftovers = {p.name for p in (*state.iterdir(), *(state / "config").iterdir())}
    assert leftovers == {
        "site.yaml",
        ".site.yaml.tmp",
        "broker-ca.pem",
        "config",
        "current.yaml",
        ".current.yaml.tmp",
        "previous.yaml",
        "x",
    }
    # what was stored is what `check` accepts
    checked = await gateway_cli(
        "check",
        "--site",
        str(state / "site.yaml"),
        "--gateway",
        "gw-ld01",
        "--config-dir",
        str(state / "config"),
    )
    assert checked.returncode == 0, checked.stderr


@as_root
async def test_a_link_for_config_or_a_secrets_folder_others_may_write_is_refused_clearly(
    https_cloud: RunningCloud, certs: Certs, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    kept = precious(outside, "kept")

    # config/ → a folder of root's: refused, nothing written there or anywhere
    state, vault = tmp_path / "state", tmp_path / "etc"
    state.mkdir()
    (state / "config").symlink_to(outside)
    os.chown(state, *AGENT)
    done = await claim_into(https_cloud, certs, state, vault)
    assert done.returncode == 1
    assert f"{state / 'config'} is not a folder (a symbolic link?)" in done.stderr
    assert "refusing to write through it" in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["kept"]
    assert untouched(kept)
    assert sorted(p.name for p in state.iterdir()) == ["config"]
    assert list(vault.iterdir()) == []

    # the secrets folder belongs to the agent's user: the credentials are not written there
    state2, vault2 = tmp_path / "state2", tmp_path / "etc2"
    vault2.mkdir()
    os.chown(vault2, *AGENT)
    done = await claim_into(https_cloud, certs, state2, vault2)
    assert done.returncode == 1
    assert f"{vault2} is not root's alone" in done.stderr
    assert "--secrets-dir" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(vault2.iterdir()) == []
    assert list(state2.iterdir()) == []

    # nor in a folder of root's that everyone may write in
    vault2.chmod(0o777)
    os.chown(vault2, 0, 0)
    done = await claim_into(https_cloud, certs, state2, vault2)
    assert done.returncode == 1
    assert f"{vault2} is not root's alone" in done.stderr
    assert list(vault2.iterdir()) == []
