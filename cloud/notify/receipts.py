"""Call results from the voice vendors' receipts: whether the person answered the call that
read the alarm aloud, put on the notification it belongs to and on the alarm's log.

- Aliyun pushes `VoiceReport` (HTTP batch push): a JSON array of calls with `call_id`,
  `status_code` (200000: the callee heard the message), `status_msg`, `duration` and our
  `out_id` (the notification's key). Answer: {"code": 0, "msg": "接收成功"}.
- Tencent Cloud calls back with {"voiceprompt_callback": {"result": "0" answered, "1" not
  answered, "2" call failed, "callid", …}}; the call id is the one `SendTtsVoice` returned
  (kept on the row as `vendor_ref`). Answer: {"result": 0, "errmsg": "OK"}.

The web app takes them at POST /api/receipts/{vendor}/{token} (cloud/web/receipts.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cloud.alarms.model import SYSTEM
from cloud.alarms.rows import log as log_line
from cloud.db.database import Conn, Database, Row
from cloud.errors import Refused
from cloud.notify.log import NotificationLog


@dataclass(frozen=True, slots=True)
class CallResult:
    key: str | None  # our notification key (Aliyun's out_id)
    ref: str | None  # the vendor's call id
    answered: bool
    detail: str


def _refused(vendor: str, why: str) -> Refused:
    return Refused(f"回执格式不对 / not a {vendor} receipt: {why}")


def aliyun_voice_report(body: Any) -> list[CallResult]:
    if not isinstance(body, list):
        raise _refused("VoiceReport", "expected a JSON array")
    out = []
    for item in body:
        if not isinstance(item, dict) or not item.get("call_id") or "status_code" not in item:
            raise _refused("VoiceReport", "each call needs call_id and status_code")
        code = str(item["status_code"])
        answered = code == "200000"
        said = "已接听 answered" if answered else "未接通 not answered"
        detail = f"{said} ({code} {item.get('status_msg', '')}, {item.get('duration', 0)} s)"
        out.append(CallResult(item.get("out_id") or None, str(item["call_id"]), answered, detail))
    return out


TENCENT_RESULTS = {"0": "已接听 answered", "1": "未接听 not answered", "2": "呼叫异常 call failed"}


def tencent_voice_callback(body: Any) -> list[CallResult]:
    call = body.get("voiceprompt_callback") if isinstance(body, dict) else None
    if not isinstance(call, dict) or not call.get("callid") or "result" not in call:
        raise _refused("voiceprompt_callback", "needs voiceprompt_callback.callid and .result")
    result = str(call["result"])
    said = TENCENT_RESULTS.get(result, f"result {result}")
    return [CallResult(None, str(call["callid"]), result == "0", f"{said} (result {result})")]


@dataclass(frozen=True, slots=True)
class Vendor:
    parse: Callable[[Any], list[CallResult]]
    ack: dict[str, Any]


VENDORS = {
    "aliyun-voice": Vendor(aliyun_voice_report, {"code": 0, "msg": "接收成功"}),
    "tencent-voice": Vendor(tencent_voice_callback, {"result": 0, "errmsg": "OK"}),
}


class CallResults:
    def __init__(self, db: Database, notifications: NotificationLog) -> None:
        self.db = db
        self.notifications = notifications
        self.counts: Counter[str] = Counter()

    async def record(self, results: list[CallResult]) -> int:
        """Put each result on its notification and the alarm's log; returns how many matched
        a notification (a receipt for a call we do not know is counted, not kept)."""
        matched = 0
        for result in results:
            row = await self.notifications.call_result(key=result.key, ref=result.ref)
            if row is None and result.key and result.ref:
                row = await self.notifications.call_result(key=None, ref=result.ref)
            if row is None:
                self.counts["receipts_unknown_call"] += 1
                continue
            await self._write(row, result)
            self.counts["calls_answered" if result.answered else "calls_not_answered"] += 1
            matched += 1
        return matched

    async def _write(self, row: Row, result: CallResult) -> None:
        now = self.db.clock()
        who = f"{row['target']}" + (f" {row['name']}" if row["name"] else "")
        line = f"step {row['step']} call to {who} via {row['channel']}: {result.detail}"

        def write(conn: Conn) -> None:
            self.notifications.record_result(conn, row["id"], result.detail)
            log_line(conn, row["alarm_id"], SYSTEM, "call_result", line, now)

        await self.db.write(write)
