"""The shape of the code, checked from its imports (read with `ast`, nothing is run):

- no import cycle, between modules or between the cloud's packages;
- the web app is imported only by the module that runs the cloud (`cloud.serve`);
- the cloud and the gateway side never import each other; the contract imports neither;
- the MQTT clients are each imported only where they are used: the cloud's transport, the
  gateway's uplink (its session and its sender) and zigbee bridge; the AMQP client by the
  cluster's transport, gpiozero by the GPIO driver only;
- no module of the cloud, the contract or the gateway is much over 400 lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OURS = ("cloud", "contract", "edge", "gateway", "sim")
MAX_LINES = 420


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top in OURS:
        for path in sorted((REPO / top).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[str]:
    """Every module this one imports (ours or not), by full name."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            for alias in node.names:  # `from cloud.live import messages` imports a module
                if f"{base}.{alias.name}" in MODULES:
                    yield f"{base}.{alias.name}"


def _ours(target: str) -> str | None:
    """The module of ours an import names (the longest known prefix), if any."""
    parts = target.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


GRAPH: dict[str, set[str]] = {
    name: {m for t in _imports(name, path) if (m := _ours(t)) is not None and m != name}
    for name, path in MODULES.items()
}
EXTERNAL: dict[str, set[str]] = {
    name: {t.split(".")[0] for t in _imports(name, path) if _ours(t) is None}
    for name, path in MODULES.items()
}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def _package(module: str) -> str:
    """The cloud's package a module belongs to (cloud.alarms.book → cloud.alarms)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "cloud" else parts[0]


def test_the_checker_sees_the_imports() -> None:
    """A checker that read nothing would pass everything."""
    assert len(MODULES) > 100
    assert "cloud.alarms.model" in GRAPH["cloud.alarms.book"]
    assert "aiomqtt" in set().union(*EXTERNAL.values())


def test_no_import_cycle_between_modules() -> None:
    assert _cycles(GRAPH) == []


def test_no_import_cycle_between_the_clouds_packages() -> None:
    packages: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        if module.startswith("cloud."):
            here = _package(module)
            packages.setdefault(here, set()).update(
                _package(t) for t in targets if t.startswith("cloud.") and _package(t) != here
            )
    assert _cycles(packages) == []


def test_the_web_app_is_imported_only_by_what_runs_the_cloud() -> None:
    importers = {
        module
        for module, targets in GRAPH.items()
        if not module.startswith("cloud.web") and any(t.startswith("cloud.web") for t in targets)
    }
    assert importers <= {"cloud.serve"}, importers


@pytest.mark.parametrize(
    ("side", "never"),
    [
        ("cloud", ("edge", "gateway")),
        ("edge", ("cloud", "gateway")),
        ("gateway", ("cloud",)),
        ("contract", ("cloud", "edge", "gateway", "sim")),
    ],
)
def test_the_sides_keep_apart(side: str, never: tuple[str, ...]) -> None:
    crossing = sorted(
        f"{module} → {target}"
        for module, targets in GRAPH.items()
        if module.split(".")[0] == side
        for target in targets
        if target.split(".")[0] in never
    )
    assert crossing == []


@pytest.mark.parametrize(
    ("library", "allowed"),
    [
        ("aiomqtt", {"cloud.transport.mqtt"}),
        ("aio_pika", {"cloud.transport.amqp", "cloud.transport.amqp_inbox"}),
        ("aiormq", {"cloud.transport.amqp"}),
        # edge.sim plays zigbee2mqtt (another program) publishing to the gateway's broker
        (
            "paho",
            {
                "gateway.uplink",
                "gateway.uplink_sender",
                "edge.drivers.zigbee",
                "gateway.footprint",
                "edge.sim",
            },
        ),
        ("gpiozero", {"edge.drivers.gpio"}),
        # the SQLite telemetry backend: the store, and its history tables
        ("aiosqlite", {"cloud.telemetry.sqlite", "cloud.telemetry.sqlite_history"}),
        # the units of work' connection; the LISTEN/NOTIFY sessions (async, on the event loop)
        ("psycopg", {"cloud.db.postgres", "cloud.db.notices"}),
    ],
)
def test_each_client_library_has_one_home(library: str, allowed: set[str]) -> None:
    users = {module for module, libs in EXTERNAL.items() if library in libs}
    assert users <= allowed, sorted(users - allowed)


def test_no_module_of_the_cloud_contract_or_gateway_is_much_over_400_lines() -> None:
    long = sorted(
        f"{name}: {n} lines"
        for name, path in MODULES.items()
        if name.split(".")[0] in ("cloud", "contract", "gateway")
        and (n := len(path.read_text().splitlines())) > MAX_LINES
    )
    assert long == []
