"""The vendor fake as a fixture, and each vendor channel built against it (or with wrong
credentials), for the channel and escalation tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cloud.alarms.model import Alarm, AlarmState
from cloud.notify.aliyun import AliyunRpc, AliyunSmsChannel, AliyunVoiceChannel
from cloud.notify.base import Notification
from cloud.notify.channels import Closable
from cloud.notify.robots import DingTalkRobot, FeishuBot, WeComRobot
from cloud.notify.tencent import TencentApi, TencentSmsChannel, TencentVoiceChannel
from tests import vendor_fakes as v

#: generous: a loaded machine must not turn a slow answer into a lost one
TIMEOUT_S = 5.0


def build(
    product: str,
    fake: v.VendorFake,
    *,
    wrong: bool = False,
    per_minute: int = 20,
    timeout_s: float = TIMEOUT_S,
) -> Closable:
    """The channel for `product` aimed at the fake; `wrong`: with a wrong secret or key;
    `timeout_s`: short where the test makes the fake hang."""
    bad = "wrong-" if wrong else ""
    if product in ("sms_aliyun", "voice_aliyun"):
        rpc = AliyunRpc(
            fake.url(product), v.ALIYUN_KEY_ID, bad + v.ALIYUN_SECRET, timeout_s=timeout_s
        )
        if product == "sms_aliyun":
            return AliyunSmsChannel(rpc, sign_name=v.SMS_SIGN, template_code=v.SMS_TEMPLATE)
        return AliyunVoiceChannel(rpc, tts_code=v.TTS_CODE, show_number=v.SHOW_NUMBER)
    if product in ("sms_tencent", "voice_tencent"):
        sms = product == "sms_tencent"
        api = TencentApi(
            fake.url(product),
            service="sms" if sms else "vms",
            version="2021-01-11" if sms else "2020-09-02",
            region="ap-guangzhou",
            secret_id=v.TENCENT_ID,
            secret_key=bad + v.TENCENT_KEY,
            timeout_s=timeout_s,
        )
        if sms:
            return TencentSmsChannel(
                api, app_id=v.TC_SMS_APP, sign_name=v.SMS_SIGN, template_id=v.TC_SMS_TEMPLATE
            )
        return TencentVoiceChannel(api, app_id=v.TC_VMS_APP, template_id=v.TC_VMS_TEMPLATE)
    if product == "wecom":
        url = fake.url("wecom").replace(v.WECOM_KEY, bad + v.WECOM_KEY)
        return WeComRobot(url, timeout_s=timeout_s, per_minute=per_minute)
    if product == "dingtalk":
        return DingTalkRobot(
            fake.url("dingtalk"),
            secret=bad + v.DINGTALK_SECRET,
            timeout_s=timeout_s,
            per_minute=per_minute,
        )
    return FeishuBot(
        fake.url("feishu"), secret=bad + v.FEISHU_SECRET, timeout_s=timeout_s, per_minute=per_minute
    )


def alarm(alarm_id: int = 7, **changes: Any) -> Alarm:
    at = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)
    data: dict[str, Any] = {
        "id": alarm_id,
        "rule": "smoke_alarm",
        "level": 1,
        "level_name": "I",
        "kind": "smoke",
        "gateway": "gw-ld02",
        "device": "smoke-0201",
        "model": "smoke_dry_contact",
        "street_id": "jd-jinjiang",
        "community_id": "sq-hongxing",
        "community": "红星社区",
        "grid_id": "wg-02",
        "grid": "第二网格",
        "building_id": "ld-02",
        "building": "2栋",
        "home_id": "ld-02-301",
        "home": "301",
        "title_zh": "烟雾报警",
        "title_en": "Smoke alarm",
        "value": None,
        "first_event_id": "e1",
        "last_event_id": "e1",
        "repeats": 0,
        "state": AlarmState.ACTIVE,
        "device_ts": at,
        "received_at": at,
        "stored_at": at,
        "pushed_at": None,
        "shown_at": None,
        "accepted_at": None,
        "accepted_by": None,
        "resolved_at": None,
        "resolved_by": None,
        "outcome": None,
        "note": None,
    }
    data.update(changes)
    return Alarm.model_validate(data)


def note(
    product: str = "sms_aliyun", phone: str | None = "139 0000 2001", **changes: Any
) -> Notification:
    a = alarm()
    values: dict[str, Any] = {
        "key": f"{a.id}/0/grid_worker/0/{product}",
        "alarm": a,
        "step": 0,
        "reason": "notify",
        "target": "grid_worker",
        "name": "李网格",
        "phone": phone,
        "link": "https://duty.example.cn/?alarm=7",
    }
    values.update(changes)
    return Notification(**values)


def expected_text(product: str) -> Callable[[str], bool]:
    """What the vendor must have got: where, what, level (and the link where one fits)."""

    def check(text: str) -> bool:
        parts = (
            "红星社区2栋301",
            "烟雾报警",
            "Ⅰ级" if product.startswith(("sms", "voice")) else "I级",
        )
        link = not product.startswith("voice")
        return all(p in text for p in parts) and (not link or "?alarm=7" in text)

    return check
