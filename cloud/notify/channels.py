"""The vendor channels the settings turn on, by the name a policy step uses (`via`)."""

from __future__ import annotations

from typing import Protocol

from cloud.notify.aliyun import AliyunRpc, AliyunSmsChannel, AliyunVoiceChannel
from cloud.notify.base import Channel
from cloud.notify.robots import DingTalkRobot, FeishuBot, WeComRobot
from cloud.notify.tencent import TencentApi, TencentSmsChannel, TencentVoiceChannel
from cloud.settings import CloudSettings


class Closable(Channel, Protocol):
    async def close(self) -> None: ...


def vendor_channels(settings: CloudSettings) -> dict[str, Closable]:
    """SMS, voice and robot channels whose settings are complete (the rest stay off: a step
    naming one records "not configured" and falls back)."""
    out: dict[str, Closable] = {}
    timeout = settings.notify_timeout_s
    ali = settings.aliyun
    if ali is not None:
        secret = ali.access_key_secret.get_secret_value()
        if ali.sms_sign_name and ali.sms_template_code:
            rpc = AliyunRpc(ali.sms_endpoint, ali.access_key_id, secret, timeout_s=timeout)
            out["sms_aliyun"] = AliyunSmsChannel(
                rpc, sign_name=ali.sms_sign_name, template_code=ali.sms_template_code
            )
        if ali.voice_tts_code and ali.voice_show_number:
            rpc = AliyunRpc(ali.voice_endpoint, ali.access_key_id, secret, timeout_s=timeout)
            out["voice_aliyun"] = AliyunVoiceChannel(
                rpc, tts_code=ali.voice_tts_code, show_number=ali.voice_show_number
            )
    tc = settings.tencent
    if tc is not None:
        key = tc.secret_key.get_secret_value()
        if tc.sms_app_id and tc.sms_sign_name and tc.sms_template_id:
            api = TencentApi(
                tc.sms_endpoint,
                service="sms",
                version="2021-01-11",
                region=tc.region,
                secret_id=tc.secret_id,
                secret_key=key,
                timeout_s=timeout,
            )
            out["sms_tencent"] = TencentSmsChannel(
                api,
                app_id=tc.sms_app_id,
                sign_name=tc.sms_sign_name,
                template_id=tc.sms_template_id,
            )
        if tc.voice_app_id and tc.voice_template_id:
            api = TencentApi(
                tc.voice_endpoint,
                service="vms",
                version="2020-09-02",
                region=tc.region,
                secret_id=tc.secret_id,
                secret_key=key,
                timeout_s=timeout,
            )
            out["voice_tencent"] = TencentVoiceChannel(
                api, app_id=tc.voice_app_id, template_id=tc.voice_template_id
            )
    if settings.wecom_url is not None:
        out["wecom"] = WeComRobot(settings.wecom_url.get_secret_value(), timeout_s=timeout)
    if settings.dingtalk_url is not None and settings.dingtalk_secret is not None:
        out["dingtalk"] = DingTalkRobot(
            settings.dingtalk_url.get_secret_value(),
            secret=settings.dingtalk_secret.get_secret_value(),
            timeout_s=timeout,
        )
    if settings.feishu_url is not None and settings.feishu_secret is not None:
        out["feishu"] = FeishuBot(
            settings.feishu_url.get_secret_value(),
            secret=settings.feishu_secret.get_secret_value(),
            timeout_s=timeout,
        )
    return out
