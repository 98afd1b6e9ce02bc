"""The web app is routers that call domain services: checked from its source (read with `ast`,
nothing is run). Only `cloud/web/app.py` knows how the cloud is put together (`cloud.parts`),
so every route takes the services it uses as typed dependencies (cloud/web/deps.py); no module
of the web app holds SQL or talks to the database."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from cloud.web import app as web_app

WEB = Path(web_app.__file__).resolve().parent
MODULES = sorted(WEB.glob("*.py"))
#: SQL as our code writes it (upper-case keywords), e.g. "SELECT * FROM alarms WHERE …".
SQL = re.compile(
    r"\b(SELECT\b.+\bFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b"
)
#: The Database's ways in (cloud/db/database.py) and a connection's.
DATABASE_CALLS = {
    "fetch_all",
    "fetch_one",
    "fetch_value",
    "execute",
    "execute_many",
    "executemany",
    "executescript",
}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _imported(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_checks_see_what_they_look_for() -> None:
    """A check that read nothing, or whose patterns match nothing, would pass everything."""
    assert {p.name for p in MODULES} >= {"app.py", "alarms.py", "deps.py", "site.py"}
    assert "cloud.parts" in _imported(_tree(WEB / "app.py"))
    assert SQL.search("SELECT * FROM alarms WHERE id = ?")
    assert SQL.search("INSERT OR IGNORE INTO events (id) VALUES (?)")
    assert SQL.search("UPDATE alarms SET shown_at = ? WHERE id = ?")
    assert SQL.search("DELETE FROM sessions WHERE name = ?")
    assert not SQL.search("Select a device from the list, then update it")


def test_only_the_app_knows_how_the_cloud_is_put_together() -> None:
    knowing = sorted(
        path.name
        for path in MODULES
        if any(name.startswith("cloud.parts") for name in _imported(_tree(path)))
    )
    assert knowing == ["app.py"]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_sql_and_no_database_calls_in_the_web_app(path: Path) -> None:
    tree = _tree(path)
    sql = [
        f"line {node.lineno}: {node.value[:60]!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value)
    ]
    calls = [
        f"line {node.lineno}: .{node.func.attr}(…)"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in DATABASE_CALLS
    ]
    imports = sorted(name for name in _imported(tree) if name.startswith("cloud.db"))
    assert (sql, calls, imports) == ([], [], [])
