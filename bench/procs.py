"""Child processes of the benchmark (broker, InfluxDB, the cloud, peers, subscribers), each
stopped by its own process id, and a watcher that measures their CPU and memory."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent


def stop_process(
    proc: subprocess.Popen[Any], timeout: float = 10.0, sig: int = signal.SIGTERM
) -> None:
    """Signal this one process (by its pid; SIGTERM), then SIGKILL if it does not exit."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


class LineReader:
    """Reads a child's stdout on a thread so the pipe never fills; lines arrive in a queue."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no line matching {pattern!r} within {timeout}s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"process {self.proc.pid} exited ({self.proc.poll()})")
            match = regex.search(line)
            if match:
                return match


@dataclass
class Child:
    """A Python tool of the benchmark run as its own process (rawsub, bareflow, the cloud)."""

    name: str
    args: list[str]
    log: Path
    env: dict[str, str] | None = None
    stdin: bool = False
    stop_signal: int = signal.SIGTERM
    proc: subprocess.Popen[str] | None = None
    reader: LineReader | None = None

    def start(self, ready: str = r"^ready$", timeout: float = 30.0) -> re.Match[str]:
        self.proc = subprocess.Popen(
            self.args,
            cwd=REPO,
            env=self.env,
            stdin=subprocess.PIPE if self.stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log.open("wb"),
            text=True,
        )
        self.reader = LineReader(self.proc)
        try:
            return self.reader.wait_for(ready, timeout)
        except (TimeoutError, RuntimeError) as exc:
            self.stop()
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.name} did not start: {exc}\n{tail}") from None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def result(self, grace: float, timeout: float = 30.0) -> dict[str, Any]:
        """A rawsub's JSON result line: it prints it once it has all it waited for; after
        `grace` seconds stdin is closed, which asks it for what it has now."""
        assert self.proc is not None and self.reader is not None
        pattern = r"^\{.*\}$"
        try:
            match = self.reader.wait_for(pattern, grace)
        except TimeoutError:
            if self.proc.stdin is not None and not self.proc.stdin.closed:
                self.proc.stdin.close()
            match = self.reader.wait_for(pattern, timeout)
        return json.loads(match.group(0))

    def finish(self, timeout: float = 30.0) -> None:
        """Close stdin (a rawsub exits then) and wait for the process to end."""
        assert self.proc is not None
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, sig=self.stop_signal)


def python_tool(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


@dataclass
class PhaseUse:
    cpu_s: float
    wall_s: float
    peak_rss_mb: float

    @property
    def core_pct(self) -> float:
        return 100.0 * self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


@dataclass
class ProcWatch:
    """CPU seconds (user + system) per phase and peak RSS of named processes, sampled by
    psutil every `interval` seconds on a thread. Several processes may share a name (one
    after the other, e.g. the subscribers of a phase): their figures are added up."""

    interval: float = 0.1
    procs: dict[int, tuple[str, psutil.Process]] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)
    _phase_peak: dict[str, int] = field(default_factory=dict)
    _base: dict[int, float] = field(default_factory=dict)
    _retired: dict[str, float] = field(default_factory=dict)
    _started: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()

    def add(self, name: str, pid: int) -> None:
        proc = psutil.Process(pid)
        with self._lock:
            self.procs[pid] = (name, proc)
            self.peak_rss.setdefault(name, 0)
            # CPU spent before it joined (start-up, imports) is not the phase's
            self._base[pid] = _cpu(proc) or 0.0

    def remove(self, name: str) -> None:
        """Stop watching (call it before the process exits: its CPU so far is kept)."""
        with self._lock:
            for pid, (n, proc) in list(self.procs.items()):
                if n == name:
                    now = _cpu(proc)
                    if now is not None and self._started is not None:
                        used = now - self._base.get(pid, 0.0)
                        self._retired[name] = self._retired.get(name, 0.0) + used
                    del self.procs[pid]

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                items = list(self.procs.values())
            for name, proc in items:
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                self.peak_rss[name] = max(self.peak_rss.get(name, 0), rss)
                self._phase_peak[name] = max(self._phase_peak.get(name, 0), rss)

    def begin(self) -> None:
        with self._lock:
            self._phase_peak.clear()
            self._retired.clear()
            self._started = time.monotonic()
            for pid, (_, proc) in self.procs.items():
                self._base[pid] = _cpu(proc) or 0.0

    def end(self) -> dict[str, PhaseUse]:
        with self._lock:
            assert self._started is not None
            wall = time.monotonic() - self._started
            used = dict(self._retired)
            for pid, (name, proc) in self.procs.items():
                now = _cpu(proc)
                if now is not None:
                    used[name] = used.get(name, 0.0) + now - self._base.get(pid, 0.0)
            self._started = None
        return {
            name: PhaseUse(
                cpu_s=cpu_s, wall_s=wall, peak_rss_mb=self._phase_peak.get(name, 0) / 2**20
            )
            for name, cpu_s in used.items()
        }


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and its descendants so far."""
    proc = psutil.Process(pid)
    return sum(c for p in [proc, *proc.children(recursive=True)] if (c := _cpu(p)) is not None)


def _cpu(proc: psutil.Process) -> float | None:
    try:
        t = proc.cpu_times()
    except psutil.Error:
        return None
    return float(t.user + t.system)


def self_pid() -> int:
    return os.getpid()
