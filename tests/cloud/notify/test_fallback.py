"""Life-safety messages are not lost to a rate limit or a vendor error, and an SMS or a call is
never sent twice: the escalator with the vendor channels against the vendor fake, on a clock
the test moves (the channels' own timeouts run on the real clock)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cloud.notify.base import Channel
from cloud.routing.sender import LEASE_S
from cloud.rules import AlarmDraft, RulesFile, load_rules
from tests import vendor_fakes as v
from tests.cloud.helpers import T0, FakeClock, book_parts, rules_file
from tests.cloud.notify.helpers import build

SMOKE = AlarmDraft(
    "smoke_alarm",
    1,
    "smoke",
    "gw-ld01",
    "smoke-0102",
    "烟雾报警",
    "Smoke alarm",
    datetime.fromtimestamp(T0, UTC),
    life_safety=True,
)
CASE_URL = "https://duty.example.cn/?alarm={id}"


@pytest.fixture
def fake() -> Iterator[v.VendorFake]:
    server = v.VendorFake(hang_s=10).start()
    try:
        yield server
    finally:
        server.stop()


def fire_policy(tmp: Path, via: list[str], fallback: list[str]) -> RulesFile:
    """The default rules, with the fire policy telling the grid worker through `via` at once
    and falling back through `fallback`."""

    def change(data: dict[str, Any]) -> None:
        [fire] = [p for p in data["policies"] if p["name"] == "fire"]
        fire["notify"] = [{"to": "grid_worker", "via": via, "fallback": fallback}]

    return load_rules(rules_file(tmp, change))


@contextlib.asynccontextmanager
async def channels(
    fake: v.VendorFake, *products: str, per_minute: int = 20, hangs: str = ""
) -> Any:
    """The channels aimed at the fake; the one that `hangs` times out after 1 s."""
    built = {
        p: build(p, fake, per_minute=per_minute, timeout_s=1.0 if p == hangs else 5.0)
        for p in products
    }
    try:
        yield dict[str, Channel](built)
    finally:
        for channel in built.values():
            await channel.close()


def by_channel(rows: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(r["channel"]): r for r in rows if r["target"] == "grid_worker"}


async def test_a_lost_sms_answer_is_not_sent_again_and_falls_back_to_a_call(
    tmp_path: Path, fake: v.VendorFake
) -> None:
    clock = FakeClock()
    config = fire_policy(tmp_path, ["sms_aliyun"], ["voice_aliyun", "wecom"])
    fake.fail_next("sms_aliyun", "hang")
    async with (
        channels(fake, "sms_aliyun", "voice_aliyun", "wecom", hangs="sms_aliyun") as chans,
        book_parts(
            tmp_path / "a.db", clock, config=config, channels=chans, case_url=CASE_URL
        ) as parts,
    ):
        [raised] = await parts.book.apply([SMOKE], clock())
        alarm_id = raised.alarm.id
        await parts.escalator.fire_due()
        await parts.escalator.deliver_due()  # the SMS goes out, its answer is lost
        await parts.escalator.deliver_due()  # the fallback: a call
        clock.advance(60)
        await parts.escalator.deliver_due()  # nothing is left to send again
        rows = by_channel(await parts.notifications.of_alarm(alarm_id))
        history = await parts.alarms.history(alarm_id)
    [sms] = fake.received("sms_aliyun")
    assert "?alarm=" in sms.text and "红星社区红星小区1栋1单元102" in sms.text
    assert len(fake.received("voice_aliyun")) == 1
    assert fake.received("wecom") == []  # the call went through: the chain stops there
    assert rows["sms_aliyun"]["status"] == "failed"
    assert "not sent again via sms_aliyun" in str(rows["sms_aliyun"]["detail"])
    assert rows["voice_aliyun"]["status"] == "delivered"
    assert rows["voice_aliyun"]["vendor_ref"] == fake.received("voice_aliyun")[0].ref
    actions = [h.action for h in history]
    assert actions.index("notify_failed") < actions.index("notify_fallback")
    assert actions.index("notify_fallback") < actions.index("delivered")


async def test_a_restart_in_the_middle_of_a_send_never_sends_it_twice(
    database_url: str, tmp_path: Path, fake: v.VendorFake
) -> None:
    clock = FakeClock()
    config = fire_policy(tmp_path, ["sms_tencent"], ["voice_tencent"])
    fake.fail_next("sms_tencent", "hang")
    async with (
        channels(fake, "sms_tencent", "voice_tencent") as chans,
        book_parts(database_url, clock, config=config, channels=chans) as parts,
    ):
        [raised] = await parts.book.apply([SMOKE], clock())
        alarm_id = raised.alarm.id
        await parts.escalator.fire_due()
        sending = asyncio.create_task(parts.escalator.deliver_due())
        await fake.await_for("sms_tencent", 1)  # the SMS is out …
        sending.cancel()  # … and the cloud dies before the answer
        with contextlib.suppress(asyncio.CancelledError):
            await sending
    async with (
        channels(fake, "sms_tencent", "voice_tencent") as chans,
        book_parts(database_url, clock, config=config, channels=chans) as parts,
    ):
        await parts.escalator.recover()
        if not database_url.startswith("sqlite"):
            # another process may be sending it: the row waits for the lease to run out
            assert await parts.escalator.deliver_due() == 0
            clock.advance(LEASE_S)
        await parts.escalator.deliver_due()
        await parts.escalator.deliver_due()
        rows = by_channel(await parts.notifications.of_alarm(alarm_id))
    assert len(fake.received("sms_tencent")) == 1
    assert rows["sms_tencent"]["status"] == "failed"
    assert "the cloud stopped before its answer" in str(rows["sms_tencent"]["detail"])
    assert rows["voice_tencent"]["status"] == "delivered"
    assert len(fake.received("voice_tencent")) == 1


async def test_a_throttled_robot_falls_back_before_the_15_s_budget_and_keeps_retrying(
    tmp_path: Path, fake: v.VendorFake
) -> None:
    clock = FakeClock()
    config = fire_policy(tmp_path, ["dingtalk"], ["sms_aliyun", "voice_aliyun"])
    second = dataclasses.replace(SMOKE, gateway="gw-ld02", device="smoke-0301")
    async with (
        channels(fake, "dingtalk", "sms_aliyun", "voice_aliyun", per_minute=1) as chans,
        book_parts(tmp_path / "a.db", clock, config=config, channels=chans) as parts,
    ):
        raised = await parts.book.apply([SMOKE, second], clock())
        await parts.escalator.fire_due()
        await parts.escalator.deliver_due()  # one robot message, the other held back
        await parts.escalator.deliver_due()  # the held one's fallback: an SMS
        rows = [by_channel(await parts.notifications.of_alarm(r.alarm.id)) for r in raised]
        history = await parts.alarms.history(raised[1].alarm.id)
        clock.advance(61)  # its retry falls due; the robot's minute has not passed here
        assert await parts.escalator.deliver_due() == 1
        later = by_channel(await parts.notifications.of_alarm(raised[1].alarm.id))
    assert rows[0]["dingtalk"]["status"] == "delivered" and "sms_aliyun" not in rows[0]
    held = rows[1]["dingtalk"]
    assert held["status"] == "pending" and held["attempts"] == 1  # still to be retried
    assert "1 messages per 60 s reached" in str(held["detail"])
    assert rows[1]["sms_aliyun"]["status"] == "delivered"
    assert len(fake.received("dingtalk")) == 1 and len(fake.received("sms_aliyun")) == 1
    assert fake.refusals == []
    lines = [h for h in history if h.action in ("notify_retry", "notify_fallback", "delivered")]
    assert [h.action for h in lines] == ["notify_retry", "notify_fallback", "delivered"]
    assert "past the policy's 15 s" in lines[1].detail
    # still held back, retried again, and no second fallback: the SMS already covers it
    assert later["dingtalk"]["status"] == "pending" and later["dingtalk"]["attempts"] == 2
    assert "voice_aliyun" not in later and fake.received("voice_aliyun") == []


async def test_a_vendor_error_is_retried_with_backoff_and_sent_once(
    tmp_path: Path, fake: v.VendorFake
) -> None:
    clock = FakeClock()
    config = fire_policy(tmp_path, ["voice_aliyun"], [])
    fake.fail_next("voice_aliyun", "error")
    async with (
        channels(fake, "voice_aliyun") as chans,
        book_parts(tmp_path / "a.db", clock, config=config, channels=chans) as parts,
    ):
        [raised] = await parts.book.apply([SMOKE], clock())
        await parts.escalator.fire_due()
        await parts.escalator.deliver_due()
        before = by_channel(await parts.notifications.of_alarm(raised.alarm.id))["voice_aliyun"]
        assert (before["status"], before["attempts"]) == ("pending", 1)
        assert "isp.SYSTEM_ERROR" in str(before["detail"])
        await parts.escalator.deliver_due()  # not yet due (2 s back-off)
        assert fake.received("voice_aliyun") == []
        clock.advance(2)
        await parts.escalator.deliver_due()
        after = by_channel(await parts.notifications.of_alarm(raised.alarm.id))["voice_aliyun"]
    assert after["status"] == "delivered" and after["attempts"] == 2
    assert len(fake.received("voice_aliyun")) == 1


async def test_a_channel_that_is_not_configured_falls_back(
    tmp_path: Path, fake: v.VendorFake
) -> None:
    clock = FakeClock()
    config = fire_policy(tmp_path, ["sms_tencent"], ["feishu"])
    async with (
        channels(fake, "feishu") as chans,
        book_parts(tmp_path / "a.db", clock, config=config, channels=chans) as parts,
    ):
        [raised] = await parts.book.apply([SMOKE], clock())
        await parts.escalator.fire_due()
        await parts.escalator.deliver_due()
        await parts.escalator.deliver_due()
        rows = by_channel(await parts.notifications.of_alarm(raised.alarm.id))
    assert rows["sms_tencent"]["status"] == "skipped"
    assert rows["sms_tencent"]["detail"] == "channel sms_tencent is not configured"
    assert rows["feishu"]["status"] == "delivered"
    [got] = fake.received("feishu")
    assert "李网格" in got.text and "烟雾报警" in got.text


async def test_when_every_channel_refuses_the_chain_ends_and_says_so(
    tmp_path: Path, fake: v.VendorFake
) -> None:
    clock = FakeClock()
    config = fire_policy(tmp_path, ["wecom"], ["dingtalk"])
    wrong = {p: build(p, fake, wrong=True) for p in ("wecom", "dingtalk")}
    try:
        async with book_parts(
            tmp_path / "a.db", clock, config=config, channels=dict[str, Channel](wrong)
        ) as parts:
            [raised] = await parts.book.apply([SMOKE], clock())
            await parts.escalator.fire_due()
            for _ in range(3):
                await parts.escalator.deliver_due()
            rows = by_channel(await parts.notifications.of_alarm(raised.alarm.id))
    finally:
        for channel in wrong.values():
            await channel.close()
    assert {c: r["status"] for c, r in rows.items()} == {"wecom": "failed", "dingtalk": "failed"}
    assert "93000" in str(rows["wecom"]["detail"]) and "310000" in str(rows["dingtalk"]["detail"])
    assert fake.received() == []


async def test_a_vendor_that_hangs_does_not_hold_back_the_other_channel_of_the_step(
    tmp_path: Path, fake: v.VendorFake
) -> None:
    clock = FakeClock()
    config = fire_policy(tmp_path, ["sms_aliyun", "wecom"], [])
    fake.fail_next("sms_aliyun", "hang")
    async with (
        channels(fake, "sms_aliyun", "wecom", hangs="sms_aliyun") as chans,
        book_parts(tmp_path / "a.db", clock, config=config, channels=chans) as parts,
    ):
        [raised] = await parts.book.apply([SMOKE], clock())
        await parts.escalator.fire_due()
        await parts.escalator.deliver_due()
        rows = by_channel(await parts.notifications.of_alarm(raised.alarm.id))
    [sms] = fake.received("sms_aliyun")
    [robot] = fake.received("wecom")
    assert robot.at - sms.at < 0.9  # not after the SMS's 1 s timeout
    assert rows["wecom"]["status"] == "delivered" and rows["sms_aliyun"]["status"] == "failed"
