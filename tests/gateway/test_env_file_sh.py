"""deploy/lib/env-file.sh, which deploy/install-gateway.sh (run as root) uses instead of
sourcing env files: reading one never runs anything in it, a value comes back exactly as
gateway/claim.py's `_env_value` or the script's own `env_value` wrote it, and the installer
stays `bash -n` and shellcheck clean."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.claim import _env_value
from tests.servers import REPO

LIB = REPO / "deploy" / "lib" / "env-file.sh"
KEYS = "SC_GW_SITE SC_GW_GATEWAY SC_GW_CONFIGS_DIR SC_GW_CONFIG_DIR SC_GW_PASSWORD"
#: What a value that ran would create (unique to this test file, so no other program's file).
INJECTED = Path("/tmp/sc-test-env-file-injected")
TRICKY = [
    "plain-Pass_word.1",
    "with space",
    "hash#not-a-comment",
    "$HOME and ${PATH}",
    "`id`",
    f"$(touch {INJECTED})",
    "semi;colon && pipe | amp &",
    'quote " and \\ backslash \\" end\\',
    "single ' quote",
    "ünï-códe 密码",
    "",
]


def bash(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f'set -euo pipefail; . "{LIB}"; {script}', "bash", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def read_back(env_file: Path) -> dict[str, str]:
    """The values read_env_file sets, printed one per line as key=repr-safe hex."""
    done = bash(
        f'read_env_file "$1" {KEYS}; for k in {KEYS}; do '
        'printf "%s=" "$k"; printf "%s" "${!k-<unset>}" | od -An -tx1 | tr -d " \\n"; echo; done',
        str(env_file),
    )
    assert done.returncode == 0, done.stderr
    values = {}
    for line in done.stdout.splitlines():
        key, _, hexed = line.partition("=")
        values[key] = bytes.fromhex(hexed).decode()
    return values


def test_reading_a_crafted_env_file_runs_nothing_in_it(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    env_file = tmp_path / "gateway.env"
    env_file.write_text(
        "# a comment $(touch {ran})\n"
        "\n"
        f'SC_GW_SITE="/srv/site \\$(touch {ran}) \\`touch {ran}\\`.yaml"\n'
        f"SC_GW_GATEWAY='gw-ld01 $(touch {ran})'\n"
        f"SC_GW_UNKNOWN=$(touch {ran})\n"
        f"PATH=/nowhere; touch {ran}\n"
        "SC_GW_CONFIGS_DIR=/opt/smart-community/firmware_configs\n"
    )
    values = read_back(env_file)
    assert not ran.exists()
    assert values["SC_GW_SITE"] == f"/srv/site $(touch {ran}) `touch {ran}`.yaml"
    assert values["SC_GW_GATEWAY"] == f"gw-ld01 $(touch {ran})"
    assert values["SC_GW_CONFIGS_DIR"] == "/opt/smart-community/firmware_configs"
    assert values["SC_GW_CONFIG_DIR"] == "<unset>"  # not in the file
    assert "SC_GW_UNKNOWN" not in values  # only the keys asked for are set


@pytest.mark.parametrize(
    "line",
    [
        "SC_GW_SITE=$(touch {ran})",
        "SC_GW_SITE=`touch {ran}`",
        "SC_GW_SITE=/a; touch {ran}",
        'SC_GW_SITE="unterminated $(touch {ran})',
        'SC_GW_SITE="/a" ; touch {ran}',
        'SC_GW_SITE="an unescaped $(touch {ran}) inside quotes"',
    ],
)
def test_a_line_that_is_not_a_plain_or_quoted_value_stops_with_its_line_number(
    tmp_path: Path, line: str
) -> None:
    ran = tmp_path / "ran"
    env_file = tmp_path / "gateway.env"
    env_file.write_text("# first\nSC_GW_GATEWAY=gw-ld01\n" + line.format(ran=ran) + "\n")
    done = bash('read_env_file "$1" SC_GW_SITE SC_GW_GATEWAY', str(env_file))
    assert done.returncode == 1
    assert f"{env_file}:3: SC_GW_SITE: not a plain or quoted value" in done.stderr
    assert not ran.exists()


@pytest.mark.parametrize("value", TRICKY)
def test_a_value_comes_back_as_written_by_the_script_and_by_the_claim(
    tmp_path: Path, value: str
) -> None:
    INJECTED.unlink(missing_ok=True)  # a leftover must not fail this run, nor hide one
    by_script = bash('printf "SC_GW_PASSWORD=%s\\n" "$(env_value "$1")"', value)
    assert by_script.returncode == 0, by_script.stderr
    script_file = tmp_path / "script.env"
    script_file.write_text(by_script.stdout)
    claim_file = tmp_path / "claim.env"
    claim_file.write_text(f"SC_GW_PASSWORD={_env_value(value)}\n")
    assert read_back(script_file)["SC_GW_PASSWORD"] == value
    assert read_back(claim_file)["SC_GW_PASSWORD"] == value
    assert not INJECTED.exists()


def test_a_value_with_a_line_break_is_refused() -> None:
    done = bash('env_value "$1"', "pass\nSC_GW_SITE=/etc/shadow")
    assert done.returncode == 1
    assert "line break" in done.stderr
    assert done.stdout == ""


def test_the_installer_and_its_library_pass_bash_n_and_shellcheck() -> None:
    script = REPO / "deploy" / "install-gateway.sh"
    for path in (script, LIB):
        checked = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    linted = subprocess.run(
        ["shellcheck", "-x", str(script), str(LIB)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert linted.returncode == 0, linted.stdout
    # and the installer sources no env file: it reads them with read_env_file
    text = script.read_text()
    assert 'read_env_file "$env_file"' in text
    assert '. "$ENV_FILE' not in text
