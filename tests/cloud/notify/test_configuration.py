"""Which channels the settings turn on, what the settings refuse, and how a step's fallback
list is read (also by the reminders that repeat it)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from cloud.notify.channels import vendor_channels
from cloud.routing import policy as routing
from cloud.rules.policies import Notify, Policy, Target, Via
from cloud.settings import AliyunSettings, CloudSettings, TencentSettings


async def test_a_channel_is_on_only_once_its_settings_are_complete() -> None:
    settings = CloudSettings(
        aliyun=AliyunSettings(
            access_key_id="id",
            access_key_secret=SecretStr("s"),
            sms_sign_name="锦江街道",
            sms_template_code="SMS_1",
            voice_tts_code="TTS_1",  # no show number: the call stays off
        ),
        tencent=TencentSettings(
            secret_id="id", secret_key=SecretStr("k"), voice_app_id="1", voice_template_id="2"
        ),
        wecom_url=SecretStr("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K"),
        feishu_url=SecretStr("https://open.feishu.cn/open-apis/bot/v2/hook/T"),
        feishu_secret=SecretStr("s"),
    )
    channels = vendor_channels(settings)
    try:
        assert sorted(channels) == ["feishu", "sms_aliyun", "voice_tencent", "wecom"]
        assert all(name == channel.name for name, channel in channels.items())
    finally:
        for channel in channels.values():
            await channel.close()
    assert vendor_channels(CloudSettings()) == {}


def test_a_signed_robot_without_its_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="SC_CLOUD_DINGTALK_SECRET"):
        CloudSettings(dingtalk_url=SecretStr("https://oapi.dingtalk.com/robot/send?access_token=T"))
    with pytest.raises(ValidationError, match="SC_CLOUD_FEISHU_SECRET"):
        CloudSettings(feishu_url=SecretStr("https://open.feishu.cn/open-apis/bot/v2/hook/T"))


def test_an_unknown_channel_in_a_policy_is_refused() -> None:
    with pytest.raises(ValidationError, match="fallback"):
        Notify.model_validate({"to": "grid_worker", "via": ["wecom"], "fallback": ["pager"]})


def test_the_fallback_is_the_first_channel_not_used_yet_also_in_reminders() -> None:
    policy = Policy(
        name="fire",
        rules=["smoke_alarm"],
        budget_s=60,
        deliver_within_s=15,
        notify=[
            Notify(
                to=Target.GRID_WORKER,
                via=[Via.SMS_ALIYUN],
                fallback=[Via.VOICE_ALIYUN, Via.WECOM],
            )
        ],
        escalate=[Notify(to=Target.GRID_WORKER, via=[Via.DINGTALK], fallback=[Via.FEISHU])],
        reminders=1,
    )
    first = routing.step(policy, 0)
    assert first is not None
    assert routing.fallback_for(first, "grid_worker", {"sms_aliyun"}) is Via.VOICE_ALIYUN
    assert routing.fallback_for(first, "grid_worker", {"sms_aliyun", "voice_aliyun"}) is Via.WECOM
    assert routing.fallback_for(first, "grid_worker", {"voice_aliyun", "wecom"}) is None
    assert routing.fallback_for(first, "street_supervisor", set()) is None
    reminder = routing.step(policy, 2)
    assert reminder is not None and reminder.reason == routing.REMIND
    [told] = reminder.notify
    assert told.fallback == [Via.VOICE_ALIYUN, Via.WECOM, Via.FEISHU]
