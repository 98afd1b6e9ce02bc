"""One thread that runs the edge's timers and hands work off from other threads.

gpiozero calls back on its own threads; the drivers post those edges here with `call_soon`,
so every driver's state is touched by this one thread only (no locks in the drivers).
Debounce checks, long-press timers, sampling and the agent's batching all run here.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Timer:
    """A scheduled call; `cancel()` is safe from any thread and after it ran."""

    __slots__ = ("_args", "_fn", "cancelled", "period", "when")

    def __init__(self, when: float, fn: Callable[..., Any], args: tuple[Any, ...], period: float):
        self.when = when
        self._fn = fn
        self._args = args
        self.period = period
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def _run(self) -> None:
        self._fn(*self._args)


class Scheduler:
    """A timer thread. `clock` is monotonic seconds (injectable for tests)."""

    def __init__(self, name: str = "edge", *, clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.clock = clock
        self._heap: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- scheduling (any thread) -------------------------------------------------------------

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        return self._push(Timer(self.clock() + max(0.0, delay), fn, args, 0.0))

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> Timer:
        return self.call_later(0.0, fn, *args)

    def call_every(
        self, period: float, fn: Callable[..., Any], *args: Any, first: float | None = None
    ) -> Timer:
        """Call every `period` seconds, first after `first` (default: one period)."""
        if period <= 0:
            raise ValueError("period must be positive")
        delay = period if first is None else first
        return self._push(Timer(self.clock() + max(0.0, delay), fn, args, period))

    def run_sync(self, fn: Callable[..., T], *args: Any, timeout: float = 5.0) -> T:
        """Run `fn` on the scheduler thread and return its result (inline if already there)."""
        if threading.current_thread() is self._thread or self._thread is None:
            return fn(*args)
        done = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["result"] = fn(*args)
            except BaseException as exc:  # handed back to the caller
                box["error"] = exc
            finally:
                done.set()

        self.call_soon(run)
        if not done.wait(timeout):
            raise TimeoutError(f"scheduler {self.name} did not run {fn!r} within {timeout}s")
        if "error" in box:
            raise box["error"]
        return box["result"]

    def _push(self, timer: Timer) -> Timer:
        with self._cond:
            heapq.heappush(self._heap, (timer.when, next(self._order), timer))
            self._cond.notify()
        return timer

    # -- lifetime ----------------------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(
                target=self._run, name=f"sched-{self.name}", daemon=True
            )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            thread, self._stopping = self._thread, True
            self._cond.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._cond:
            self._thread = None
            self._heap.clear()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    if self._heap:
                        wait = self._heap[0][0] - self.clock()
                        if wait <= 0:
                            break
                        self._cond.wait(min(wait, 1.0))
                    else:
                        self._cond.wait(1.0)
                if self._stopping:
                    return
                _, _, timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            try:
                timer._run()
            except Exception:
                log.exception("scheduler %s: callback %r failed", self.name, timer._fn)
            if timer.period and not timer.cancelled:
                # Fixed rate without drift; skip missed periods rather than bunch them up.
                now = self.clock()
                timer.when += timer.period
                if timer.when < now:
                    timer.when = now + timer.period
                self._push(timer)
