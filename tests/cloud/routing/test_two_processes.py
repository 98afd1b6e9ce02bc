"""Two cloud processes on one database — the overlap of a rolling restart, or several workers on
one PostgreSQL: each escalation step fires once and each notification goes out once, whichever
process gets there first (the steps are read again under the writer's lock in the unit that
fires them; a notification taken for delivery is leased to one process)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from pathlib import Path

from tests import vendor_fakes as v
from tests.cloud.helpers import FakeClock, book_parts
from tests.cloud.notify.test_fallback import SMOKE, channels, fake, fire_policy

__all__ = ["fake"]  # the vendor fake's fixture, shared with test_fallback

DRAFTS = [SMOKE, dataclasses.replace(SMOKE, gateway="gw-ld02", device="smoke-0301")]


async def test_two_processes_fire_each_step_and_send_each_notification_once(
    database_url: str, tmp_path: Path, fake: v.VendorFake
) -> None:
    clock = FakeClock()
    config = fire_policy(tmp_path, ["wecom", "dingtalk"], ["sms_aliyun"])
    async with (
        channels(fake, "wecom", "dingtalk", "sms_aliyun") as chans_a,
        channels(fake, "wecom", "dingtalk", "sms_aliyun") as chans_b,
        book_parts(database_url, clock, config=config, channels=chans_a) as a,
        book_parts(database_url, clock, config=config, channels=chans_b) as b,
    ):
        raised = await a.book.apply(DRAFTS, clock())
        ids = {r.alarm.id for r in raised}
        # both processes find the same steps due at the same moment
        fired = await asyncio.gather(a.escalator.fire_due(), b.escalator.fire_due())
        assert Counter(f.alarm_id for f in fired[0] + fired[1]) == dict.fromkeys(ids, 1)
        # and both look for pending notifications at once
        sent = await asyncio.gather(a.escalator.deliver_due(), b.escalator.deliver_due())
        assert sum(sent) == 2 * len(ids)  # a WeCom and a DingTalk message each
        assert await asyncio.gather(a.escalator.deliver_due(), b.escalator.deliver_due()) == [0, 0]
        histories = [await a.alarms.history(i) for i in ids]
        rows = [await a.notifications.of_alarm(i) for i in ids]
    assert len(fake.received("wecom")) == len(fake.received("dingtalk")) == len(ids)
    assert fake.received("sms_aliyun") == []  # no fallback: nothing failed
    for history in histories:  # one line for the step, one delivery per channel
        steps = [h for h in history if h.action == "notify" and "step 0" in h.detail]
        assert len(steps) == 1, [h.detail for h in history]
        assert Counter(h.action for h in history)["delivered"] == 2
    for alarm_rows in rows:
        assert {
            str(r["channel"]): str(r["status"]) for r in alarm_rows if r["target"] != "duty_room"
        } == {
            "wecom": "delivered",
            "dingtalk": "delivered",
        }
