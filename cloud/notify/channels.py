"""The vendor channels the settings turn on, by the name a policy step uses (`via`): one table
(`VENDORS`) of what builds each channel from the settings, or None while they are incomplete."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from cloud.notify.aliyun import AliyunRpc, AliyunSmsChannel, AliyunVoiceChannel
from cloud.notify.base import Channel
from cloud.notify.robots import DingTalkRobot, FeishuBot, WeComRobot
from cloud.notify.tencent import TencentApi, TencentSmsChannel, TencentVoiceChannel
from cloud.rules.policies import Via
from cloud.settings import AliyunSettings, CloudSettings, TencentSettings


class Closable(Channel, Protocol):
    async def close(self) -> None: ...


def _aliyun(ali: AliyunSettings, endpoint: str, timeout: float) -> AliyunRpc:
    secret = ali.access_key_secret.get_secret_value()
    return AliyunRpc(endpoint, ali.access_key_id, secret, timeout_s=timeout)


def _tencent(
    tc: TencentSettings, endpoint: str, service: str, version: str, timeout: float
) -> TencentApi:
    return TencentApi(
        endpoint,
        service=service,
        version=version,
        region=tc.region,
        secret_id=tc.secret_id,
        secret_key=tc.secret_key.get_secret_value(),
        timeout_s=timeout,
    )


def _sms_aliyun(s: CloudSettings, timeout: float) -> Closable | None:
    ali = s.aliyun
    if ali is None or not ali.sms_sign_name or not ali.sms_template_code:
        return None
    rpc = _aliyun(ali, ali.sms_endpoint, timeout)
    return AliyunSmsChannel(rpc, sign_name=ali.sms_sign_name, template_code=ali.sms_template_code)


def _voice_aliyun(s: CloudSettings, timeout: float) -> Closable | None:
    ali = s.aliyun
    if ali is None or not ali.voice_tts_code or not ali.voice_show_number:
        return None
    rpc = _aliyun(ali, ali.voice_endpoint, timeout)
    return AliyunVoiceChannel(rpc, tts_code=ali.voice_tts_code, show_number=ali.voice_show_number)


def _sms_tencent(s: CloudSettings, timeout: float) -> Closable | None:
    tc = s.tencent
    if tc is None or not tc.sms_app_id or not tc.sms_sign_name or not tc.sms_template_id:
        return None
    api = _tencent(tc, tc.sms_endpoint, "sms", "2021-01-11", timeout)
    return TencentSmsChannel(
        api, app_id=tc.sms_app_id, sign_name=tc.sms_sign_name, template_id=tc.sms_template_id
    )


def _voice_tencent(s: CloudSettings, timeout: float) -> Closable | None:
    tc = s.tencent
    if tc is None or not tc.voice_app_id or not tc.voice_template_id:
        return None
    api = _tencent(tc, tc.voice_endpoint, "vms", "2020-09-02", timeout)
    return TencentVoiceChannel(api, app_id=tc.voice_app_id, template_id=tc.voice_template_id)


def _wecom(s: CloudSettings, timeout: float) -> Closable | None:
    if s.wecom_url is None:
        return None
    return WeComRobot(s.wecom_url.get_secret_value(), timeout_s=timeout)


def _dingtalk(s: CloudSettings, timeout: float) -> Closable | None:
    if s.dingtalk_url is None or s.dingtalk_secret is None:
        return None
    url, secret = s.dingtalk_url.get_secret_value(), s.dingtalk_secret.get_secret_value()
    return DingTalkRobot(url, secret=secret, timeout_s=timeout)


def _feishu(s: CloudSettings, timeout: float) -> Closable | None:
    if s.feishu_url is None or s.feishu_secret is None:
        return None
    url, secret = s.feishu_url.get_secret_value(), s.feishu_secret.get_secret_value()
    return FeishuBot(url, secret=secret, timeout_s=timeout)


#: Each vendor channel, and what builds it from the settings (None: they are incomplete).
VENDORS: dict[Via, Callable[[CloudSettings, float], Closable | None]] = {
    Via.SMS_ALIYUN: _sms_aliyun,
    Via.VOICE_ALIYUN: _voice_aliyun,
    Via.SMS_TENCENT: _sms_tencent,
    Via.VOICE_TENCENT: _voice_tencent,
    Via.WECOM: _wecom,
    Via.DINGTALK: _dingtalk,
    Via.FEISHU: _feishu,
}


def vendor_channels(settings: CloudSettings) -> dict[str, Closable]:
    """SMS, voice and robot channels whose settings are complete (the rest stay off: a step
    naming one records "not configured" and falls back)."""
    out: dict[str, Closable] = {}
    for via, build in VENDORS.items():
        channel = build(settings, settings.notify_timeout_s)
        if channel is not None:
            out[via.value] = channel
    return out
