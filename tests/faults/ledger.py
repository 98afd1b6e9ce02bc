"""What a scenario sent, what the cloud stored, and the counts that compare them.

Life-safety events are the events of kind call, smoke and gas (every type: alarms, clears,
presses, faults). An event is known by (gateway, boot, seq): the agent gives each one a new
`seq` within its boot, so the key survives a replay that re-encodes the payload. The sources:
- the agents' logs: one `event queued … seq=N` line per event written to the outbox, after the
  write, and the boot from `agent started … boot=B` (one log file per start of the agent);
- the agents' outboxes (SQLite, read from outside): what is still to be sent;
- the cloud's database (`events`, `alarms`; SQLite or PostgreSQL, tests/faults/records.py):
  what was stored, in storing order.
The definitions are in docs/reliability.md.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.faults.records import Key, Records, Stored
from tests.faults.site import LIFE_SAFETY

#: The event rules that raise a life-safety alarm, and the (kind, type) that raises each.
RAISING = {
    ("call", "press"): "call_for_help",
    ("smoke", "alarm"): "smoke_alarm",
    ("gas", "alarm"): "gas_alarm",
}

#: Script steps that flip a detector's contact, and the detectors' debounce time (the shipped
#: smoke and gas models): a contact level shorter than that is ignored by the driver.
TOGGLES = ("trip_smoke", "clear_smoke", "gas_relay")
DEBOUNCE_S = 0.1

_TS = re.compile(r"^ts=(\S+)Z ")
_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


@dataclass(frozen=True, slots=True)
class Created:
    """An event an agent wrote to its outbox (from its log)."""

    gateway: str
    boot: str
    seq: int
    kind: str
    type: str
    device: str
    at: float  # time.time() of the log line

    @property
    def key(self) -> Key:
        return (self.gateway, self.boot, self.seq)


@dataclass
class AgentLog:
    """One start of an agent, read from its log file."""

    gateway: str
    path: Path
    boot: str | None = None
    events: list[Created] = field(default_factory=list)
    #: sequence numbers (any kind) seen in the log
    seqs: set[int] = field(default_factory=set)
    script_steps: int = 0  # device changes the script made (all on life-safety devices)
    #: steps that undid the device's previous step within its debounce time (the script ran
    #: late, then caught up): such a pair never reaches the driver, by design
    squeezed: int = 0
    disk_full: int = 0  # "outbox disk full" lines
    thinned: int = 0  # "outbox thinned telemetry" lines
    errors: int = 0  # level=error lines
    tracebacks: int = 0


def _fields(line: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in _FIELD.findall(line)}


def _ts(line: str) -> float | None:
    found = _TS.match(line)
    if not found:
        return None
    return datetime.fromisoformat(found.group(1) + "+00:00").timestamp()


def read_agent_log(gateway: str, path: Path) -> AgentLog:
    out = AgentLog(gateway, path)
    if not path.exists():
        return out
    pending: list[dict[str, str]] = []
    toggles: dict[str, list[float]] = defaultdict(list)
    for line in path.read_text(errors="replace").splitlines():
        if "Traceback" in line:
            out.tracebacks += 1
        if " level=error " in line:
            out.errors += 1
        if 'event="agent started"' in line:
            out.boot = _fields(line).get("boot")
        elif 'event="event queued"' in line:
            f = _fields(line)
            at = _ts(line)
            if at is None or not {"device", "kind", "type", "seq"} <= f.keys():
                continue  # a line cut by kill -9
            f["at"] = repr(at)
            pending.append(f)
        elif 'event="script step"' in line:
            out.script_steps += 1
            f = _fields(line)
            at = _ts(line)
            if f.get("do") in TOGGLES and at is not None:
                toggles[f.get("device", "")].append(at)
        elif 'event="outbox disk full"' in line:
            out.disk_full += 1
        elif 'event="outbox thinned telemetry oldest first"' in line:
            out.thinned += 1
    for times in toggles.values():
        i = 0
        while i + 1 < len(times):
            if times[i + 1] - times[i] < DEBOUNCE_S:
                out.squeezed += 2
                i += 2
            else:
                i += 1
    for f in pending:
        try:
            seq = int(f["seq"])
        except ValueError:
            continue
        out.seqs.add(seq)
        if f["kind"] in LIFE_SAFETY and out.boot is not None:
            out.events.append(
                Created(gateway, out.boot, seq, f["kind"], f["type"], f["device"], float(f["at"]))
            )
    return out


@dataclass(frozen=True, slots=True)
class Waiting:
    """An event still in an agent's outbox."""

    key: Key
    id: str
    kind: str


def read_outbox(path: Path) -> list[Waiting]:
    """The event rows of an outbox, read from outside (the agent may be writing)."""
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute("SELECT payload FROM outbox WHERE topic LIKE '%/event'").fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        db.close()
    out = []
    for (payload,) in rows:
        try:
            event = json.loads(payload)
            out.append(
                Waiting((event["gateway"], event["boot"], event["seq"]), event["id"], event["kind"])
            )
        except (ValueError, KeyError, TypeError):
            continue
    return out


def life_safety_waiting(outboxes: Iterable[Path]) -> int:
    return sum(1 for path in outboxes for w in read_outbox(path) if w.kind in LIFE_SAFETY)


@dataclass(frozen=True)
class Fault:
    """A fault of the scenario: what it was, when it began and when it ended (time.time()),
    and the gateways whose events it held up (empty: all of them)."""

    what: str
    began: float
    ended: float
    gateways: tuple[str, ...] = ()


@dataclass
class Recovery:
    """How the system came back from one fault. "Before" means sent before the fault's end
    and after the end of the previous fault on the same gateways (each fault answers for its
    own stretch of the stream)."""

    fault: Fault
    #: until the last event sent before the fault's end (and ever stored) was stored
    backlog_s: float | None
    #: until the first event sent after the fault's end was stored
    flow_s: float | None
    #: events sent before the fault's end that were never stored
    lost_before: int
    #: events were sent after the fault's end and none of them was ever stored
    flow_never: bool = False

    @property
    def recover_s(self) -> float | None:
        """The later of the two (a part with no events to wait for counts 0), or None when
        it never recovered: an event sent before the end was lost, or nothing sent after it
        was ever stored."""
        if self.lost_before or self.flow_never:
            return None
        return max(self.backlog_s or 0.0, self.flow_s or 0.0)


@dataclass
class Counts:
    """The life-safety figures of one scenario run (docs/reliability.md defines each)."""

    sent: int
    stored: int
    lost: int
    doubled: int
    out_of_order: int
    unrecorded: int
    gaps: int
    recoveries: list[Recovery]
    detail: dict[str, Any]

    @property
    def recover_s(self) -> float | None:
        """The slowest recovery of the run (None if one never completed)."""
        times = [r.recover_s for r in self.recoveries]
        if not times or any(t is None for t in times):
            return None
        return max(t for t in times if t is not None)

    @property
    def flow_s(self) -> float | None:
        times = [r.flow_s for r in self.recoveries if r.flow_s is not None]
        return max(times) if times else None


def measure(
    *,
    gateways: Sequence[str],
    agent_logs: dict[str, list[Path]],
    outboxes: Sequence[Path],
    records: Records,
    faults: Sequence[Fault],
) -> Counts:
    logs = [read_agent_log(gw, p) for gw in gateways for p in agent_logs.get(gw, [])]
    for log in logs:
        if log.script_steps > 10 and not log.events:
            raise ValueError(
                f"{log.path}: {log.script_steps} script steps and no `event queued` line with a"
                " boot: the agent's log format changed; update tests/faults/ledger.py"
            )
    all_stored = records.stored(gateways)
    stored_rows = [s for s in all_stored if s.kind in LIFE_SAFETY]
    waiting = [w for path in outboxes for w in read_outbox(path)]

    created: dict[Key, float] = {}
    kind_of: dict[Key, str] = {}
    for log in logs:
        for event in log.events:
            created[event.key] = event.at
            kind_of[event.key] = event.kind
    first_stored: dict[Key, Stored] = {}
    ids_of: dict[Key, set[str]] = defaultdict(set)
    for row in stored_rows:
        first_stored.setdefault(row.key, row)
        ids_of[row.key].add(row.id)
        # an event whose log line a kill -9 cut: sent all the same (its device time)
        created.setdefault(row.key, row.ts)
        kind_of.setdefault(row.key, row.kind)
    for w in waiting:
        if w.kind in LIFE_SAFETY:
            kind_of.setdefault(w.key, w.kind)
            created.setdefault(w.key, float("nan"))
    sent = set(created)
    stored = set(first_stored)
    lost = sent - stored

    # doubled: one event under two ids; one event raising two alarms; more alarm decisions
    # (new alarms + repeats) than the events that raise them
    two_ids = sum(len(ids) - 1 for ids in ids_of.values() if len(ids) > 1)
    alarms = [a for a in records.alarms(gateways) if a["rule"] in RAISING.values()]
    by_first = Counter(a["first_event_id"] for a in alarms if a["first_event_id"])
    alarmed_twice = sum(n - 1 for n in by_first.values() if n > 1)
    decisions = sum(1 + a["repeats"] for a in alarms)
    raising = sum(1 for r in stored_rows if (r.kind, r.type) in RAISING)
    extra_decisions = max(0, decisions - raising)
    doubled = two_ids + alarmed_twice + extra_decisions

    # out of order: per (gateway, boot), an event stored after one with a higher seq
    out_of_order = 0
    highest: dict[tuple[str, str], int] = {}
    for row in first_stored.values():
        gw_boot = row.key[:2]
        if row.key[2] < highest.get(gw_boot, -1):
            out_of_order += 1
        highest[gw_boot] = max(highest.get(gw_boot, -1), row.key[2])

    # device changes the script made that never became an event (e.g. the outbox could not
    # store them): per start of an agent, its script steps minus its life-safety events
    sent_per_boot = Counter(key[:2] for key in sent)
    unrecorded = sum(
        max(0, log.script_steps - log.squeezed - sent_per_boot[(log.gateway, log.boot or "")])
        for log in logs
    )

    # sequence numbers (any kind) that no source knows: events created and gone without trace
    known: dict[tuple[str, str], set[int]] = defaultdict(set)
    for log in logs:
        if log.boot is not None:
            known[(log.gateway, log.boot)] |= log.seqs
    for s in all_stored:
        known[s.key[:2]].add(s.key[2])
    for w in waiting:
        known[w.key[:2]].add(w.key[2])
    gaps = sum(max(seqs) - len(seqs) for seqs in known.values() if seqs)

    # each fault answers for the events sent since the previous fault (on the same gateways)
    recoveries = []
    ordered = sorted(faults, key=lambda f: f.ended)
    for i, fault in enumerate(ordered):
        since = max((f.ended for f in ordered[:i] if _overlap(f, fault)), default=float("-inf"))
        recoveries.append(_recovery(fault, since, created, first_stored, lost))
    detail = {
        "lost_by_kind": dict(Counter(kind_of[k] for k in lost)),
        "lost_still_in_outbox": sum(1 for w in waiting if w.key in lost),
        "doubled_same_seq_two_ids": two_ids,
        "doubled_alarmed_twice": alarmed_twice,
        "doubled_extra_alarm_decisions": extra_decisions,
        "raising_events_without_alarm_decision": max(0, raising - decisions),
        "boots": len({(log.gateway, log.boot) for log in logs}),
        "script_steps_squeezed": sum(log.squeezed for log in logs),
        "agent_disk_full": sum(log.disk_full for log in logs),
        "agent_thinned": sum(log.thinned for log in logs),
        "agent_errors": sum(log.errors for log in logs),
        "agent_tracebacks": sum(log.tracebacks for log in logs),
    }
    return Counts(
        sent=len(sent),
        stored=len(stored),
        lost=len(lost),
        doubled=doubled,
        out_of_order=out_of_order,
        unrecorded=unrecorded,
        gaps=gaps,
        recoveries=recoveries,
        detail=detail,
    )


def _overlap(a: Fault, b: Fault) -> bool:
    return not a.gateways or not b.gateways or bool(set(a.gateways) & set(b.gateways))


def _recovery(
    fault: Fault,
    since: float,
    created: dict[Key, float],
    stored: dict[Key, Stored],
    lost: set[Key],
) -> Recovery:
    end = fault.ended
    mine = {k: at for k, at in created.items() if not fault.gateways or k[0] in fault.gateways}
    # (an event known only from an outbox has no time: NaN is neither before nor after)
    before = [k for k, at in mine.items() if since <= at < end]
    after = [k for k, at in mine.items() if at >= end]
    stored_before = [stored[k].received_at for k in before if k in stored]
    stored_after = [stored[k].received_at for k in after if k in stored]
    return Recovery(
        fault=fault,
        backlog_s=max(0.0, max(stored_before) - end) if stored_before else None,
        flow_s=max(0.0, min(stored_after) - end) if stored_after else None,
        lost_before=sum(1 for k in before if k in lost),
        flow_never=bool(after) and not stored_after,
    )
