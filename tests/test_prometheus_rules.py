"""The alert rules shipped in deploy/prometheus/ are valid, fire on the series they are meant
for (promtool's own rule unit tests), and the example scrape configuration loads."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.servers import REPO

PROMETHEUS = REPO / "deploy" / "prometheus"


def promtool(*args: str, cwd: Path = PROMETHEUS) -> str:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is not installed (Debian package prometheus; scripts/test.sh)")
    done = subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_alert_rules_are_valid_and_fire_as_their_unit_tests_say() -> None:
    assert "SUCCESS" in promtool("check", "rules", "alerts.yml")
    assert "SUCCESS" in promtool("test", "rules", "alerts_test.yml")


def test_the_example_scrape_configuration_loads(tmp_path: Path) -> None:
    token = tmp_path / "sc-cloud.token"
    token.write_text("a-long-random-token\n")
    config = (PROMETHEUS / "prometheus.yml").read_text()
    assert "/etc/prometheus/sc-cloud.token" in config
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/etc/prometheus/sc-cloud.token", str(token))
    )
    shutil.copy(PROMETHEUS / "alerts.yml", tmp_path / "alerts.yml")
    assert "SUCCESS" in promtool("check", "config", "prometheus.yml", cwd=tmp_path)


def test_every_figure_the_rules_use_is_one_we_export() -> None:
    """A rule on a metric nobody exports never fires: the names in the rules must be those of
    cloud/web/metrics.py and gateway/metrics.py (or Prometheus's own `up`)."""
    rules = (PROMETHEUS / "alerts.yml").read_text()
    exported = (REPO / "cloud" / "web" / "metrics.py").read_text() + (
        REPO / "gateway" / "metrics.py"
    ).read_text()
    used = set(re.findall(r"\b(sc_[a-z_]+)", rules))
    for name in sorted(used):
        base = re.sub(r"_(total|bucket|count|sum)$", "", name)
        assert f'"{base}"' in exported or f'"{name}"' in exported, name
