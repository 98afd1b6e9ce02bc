"""Every SQL statement written in cloud/ runs on both backends: PostgreSQL prepares it against
the schema (syntax, names, functions, ambiguous columns) and SQLite explains it; no bare `?`
stands where PostgreSQL needs a boolean, and no code asks a cursor for `lastrowid`.

Statements are found in the source (string literals, concatenations and f-strings that start
with SELECT, INSERT, UPDATE, DELETE or WITH); an f-string's `{…}` parts get the values in
`FILLS`. The telemetry store has backends of its own and is left out, as is cloud/db/.
"""

from __future__ import annotations

import ast
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg

from cloud.alarms.timers import END_PLAN
from cloud.db.dialect import POSTGRESQL, SQLITE, pieces
from cloud.db.migrations import MIGRATIONS
from cloud.db.postgres import connect
from cloud.db.schema import version_1
from tests.servers import PostgreSQL

CLOUD = Path(__file__).resolve().parents[3] / "cloud"
SKIP = ("telemetry", "db")
START = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\s", re.I)
# what an f-string's {…} holds at run time: (file name, expression) → SQL
FILLS = {
    ("sign_in.py", "where"): "client = ? AND name = ?",
    ("queries.py", "where"): " WHERE mode = ? AND level IN (?, ?) AND verified_at IS NULL",
    ("queries.py", "_REPORT_COLUMNS"): "level, rule, mode, state, received_at",
    ("queries.py", "','.join('?' * len(chunk))"): "?, ?",
    ("arrivals.py", "table"): "events",
    ("arrivals.py", "marks"): "?, ?",
    ("recording.py", "marks"): "?, ?",
    ("casework.py", "marks"): "?, ?",
    ("casework.py", "END_PLAN"): END_PLAN,
    ("recording.py", "END_PLAN"): END_PLAN,
    ("queries.py", "OPEN_STATES"): "'active', 'accepted'",
    ("grid_cases.py", "OPEN_STATES"): "'active', 'accepted'",
    ("grid_cases.py", "marks"): "?, ?",
    ("calls_table.py", "_COLUMNS"): "id, alarm_id, gateway, status, offered_at, ended_at",
    ("calls_table.py", "_HOLDING"): "'offering', 'ringing'",
}
BARE_CONDITION = re.compile(r"\b(WHEN|WHERE|AND|OR|NOT)\s+\?\s*(THEN|AND|OR|\)|$)", re.I)


def statements() -> Iterator[tuple[str, str]]:
    for path in sorted(CLOUD.rglob("*.py")):
        if path.relative_to(CLOUD).parts[0] in SKIP:
            continue
        tree = ast.parse(path.read_text())
        parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
        outer: list[tuple[int, int]] = []
        for node in ast.walk(tree):
            if id(node) in parts or not isinstance(node, ast.expr):
                continue
            sql = _text(node, path.name)
            if sql is None or not START.match(sql):
                continue
            span = (node.lineno, node.end_lineno or node.lineno)
            if any(a <= span[0] and span[1] <= b and (a, b) != span for a, b in outer):
                continue  # a piece of a concatenation already taken whole
            outer.append(span)
            yield f"{path.relative_to(CLOUD.parent)}:{node.lineno}", " ".join(sql.split())


def _text(node: ast.AST, file: str) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        out = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                out.append(str(value.value))
            else:
                assert isinstance(value, ast.FormattedValue)
                expr = ast.unparse(value.value)
                out.append(FILLS.get((file, expr), "{" + expr + "}"))
        return "".join(out)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left, file), _text(node.right, file)
        if left is not None and right is not None:
            return left + right
    return None


def numbered(sql: str) -> tuple[str, int]:
    """`?` as PostgreSQL's $1, $2, … (for PREPARE); how many."""
    count = 0

    def number(_: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"${count}"

    text = "".join(re.sub(r"\?", number, part) if code else part for code, part in pieces(sql))
    return text, count


def problems(postgresql: PostgreSQL) -> list[str]:
    found: list[str] = []
    lite = sqlite3.connect(":memory:", isolation_level=None)
    lite.execute("BEGIN")
    version_1(lite, SQLITE)
    for _, _, step in MIGRATIONS:
        step(lite, SQLITE)
    url = postgresql.create_database("portable_sql")
    try:
        conn = connect(url)
        conn.execute("BEGIN")
        version_1(conn, POSTGRESQL)
        for _, _, step in MIGRATIONS:
            step(conn, POSTGRESQL)
        conn.commit()
        with conn.raw as pg:
            for where, sql in statements():
                if "{" in sql:
                    found.append(f"{where}: an f-string part without a FILLS entry: {sql}")
                    continue
                if BARE_CONDITION.search(sql):
                    found.append(f"{where}: a bare ? as a condition (write ? = 1): {sql}")
                text, count = numbered(sql)
                try:
                    with pg.transaction():
                        pg.execute(f"PREPARE check_sql AS {text}".replace("%", "%%"))
                        pg.execute("DEALLOCATE check_sql")
                except psycopg.Error as exc:
                    found.append(f"{where}: PostgreSQL: {str(exc).splitlines()[0]}: {sql}")
                try:
                    lite.execute(f"EXPLAIN {sql}", [None] * count)
                except sqlite3.Error as exc:
                    found.append(f"{where}: SQLite: {exc}: {sql}")
    finally:
        postgresql.drop_database("portable_sql")
        lite.close()
    for path in sorted(CLOUD.rglob("*.py")):
        if path.relative_to(CLOUD).parts[0] in SKIP:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if ".lastrowid" in line:
                found.append(
                    f"{path.relative_to(CLOUD.parent)}:{number}: lastrowid (write INSERT …"
                    " RETURNING id)"
                )
    return found


def test_the_statements_are_found() -> None:
    """The finder sees the statements (a finder that found none would pass everything)."""
    found = dict(statements())
    assert len(found) > 80
    assert any("INSERT INTO audit" in sql for sql in found.values())


def test_every_statement_runs_on_both_backends(postgresql: PostgreSQL) -> None:
    found = problems(postgresql)
    assert found == [], "\n".join(found)
