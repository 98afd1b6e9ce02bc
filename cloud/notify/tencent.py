"""Tencent Cloud (腾讯云) SMS `SendSms` (sms, 2021-01-11) and voice notification `SendTtsVoice`
(vms, 2020-09-02), through API 3.0: a JSON POST signed with TC3-HMAC-SHA256.

Not tencentcloud-sdk-python: it is blocking (requests) and ships every product; these are two
signed POSTs on httpx. The notification's key goes out as `SessionContext`, which Tencent
hands back in its answer. Templates: SMS {1}=level {2}=what {3}=where {4}=link, voice
{1}=level {2}=what {3}=where (docs/notifications.md). Whether a call was answered arrives as
the `voiceprompt_callback` receipt (cloud/notify/receipts.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from cloud.notify.base import Delivery, Notification
from cloud.notify.vendor import e164, transport_failure, words

CONTENT_TYPE = "application/json; charset=utf-8"
#: flow control: the API's own (RequestLimitExceeded) and per number (LimitExceeded.*)
LIMIT_PREFIXES = ("RequestLimitExceeded", "LimitExceeded")
TRANSIENT_PREFIXES = ("InternalError", "ResourceUnavailable")
LIMIT_WAIT_S = 30.0  # the SMS per-number limit is one message in 30 s


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def tc3_authorization(
    *, secret_id: str, secret_key: str, service: str, host: str, payload: bytes, timestamp: int
) -> str:
    """The `Authorization` header of API 3.0 (TC3-HMAC-SHA256) for a JSON POST to `/`."""
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            f"content-type:{CONTENT_TYPE}\nhost:{host}\n",
            "content-type;host",
            hashlib.sha256(payload).hexdigest(),
        ]
    )
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join(
        [
            "TC3-HMAC-SHA256",
            str(timestamp),
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = _hmac(_hmac(_hmac(f"TC3{secret_key}".encode(), date), service), "tc3_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders=content-type;host,"
        f" Signature={signature}"
    )


class TencentApi:
    """One signed API 3.0 call to a Tencent Cloud product endpoint."""

    def __init__(
        self,
        endpoint: str,
        *,
        service: str,
        version: str,
        region: str,
        secret_id: str,
        secret_key: str,
        timeout_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint = endpoint
        self.host = urlsplit(endpoint).netloc
        self.service = service
        self.version = version
        self.region = region
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.clock = clock
        self.client = httpx.AsyncClient(timeout=timeout_s)

    async def call(self, action: str, params: dict[str, Any]) -> httpx.Response:
        payload = json.dumps(params, ensure_ascii=False).encode()
        stamp = int(self.clock())
        headers = {
            "Content-Type": CONTENT_TYPE,
            "Host": self.host,
            "X-TC-Action": action,
            "X-TC-Version": self.version,
            "X-TC-Region": self.region,
            "X-TC-Timestamp": str(stamp),
            "Authorization": tc3_authorization(
                secret_id=self.secret_id,
                secret_key=self.secret_key,
                service=self.service,
                host=self.host,
                payload=payload,
                timestamp=stamp,
            ),
        }
        return await self.client.post(self.endpoint, content=payload, headers=headers)

    async def close(self) -> None:
        await self.client.aclose()


def refusal(what: str, code: str, message: str, request: str) -> Delivery:
    detail = f"{what}: {code}: {message} (RequestId {request})"
    if code.startswith("AuthFailure"):
        return Delivery(False, f"{detail}; credentials or signature refused, check settings")
    if code.startswith(LIMIT_PREFIXES):
        return Delivery(False, f"{detail}; rate limited", retry=True, retry_after_s=LIMIT_WAIT_S)
    if code.startswith(TRANSIENT_PREFIXES):
        return Delivery(False, detail, retry=True)
    return Delivery(False, detail)


def answer(what: str, resp: httpx.Response) -> tuple[dict[str, Any], Delivery | None]:
    """The `Response` object, or the delivery that says why there is none to use."""
    if resp.status_code >= 500:
        return {}, Delivery(False, f"{what}: HTTP {resp.status_code}", retry=True)
    try:
        body = resp.json()["Response"]
    except (ValueError, KeyError, TypeError):
        return {}, Delivery(False, f"{what}: HTTP {resp.status_code}: not an API 3.0 answer")
    error = body.get("Error")
    if error:
        return body, refusal(
            what, str(error.get("Code")), str(error.get("Message")), body.get("RequestId", "")
        )
    return body, None


class TencentSmsChannel:
    """SMS through Tencent Cloud `SendSms`."""

    name = "sms_tencent"
    once_only = True

    def __init__(self, api: TencentApi, *, app_id: str, sign_name: str, template_id: str) -> None:
        self.api = api
        self.app_id = app_id
        self.sign_name = sign_name
        self.template_id = template_id

    async def send(self, notification: Notification) -> Delivery:
        if not notification.phone:
            return Delivery(False, "sms_tencent: no phone number on file")
        w = words(notification)
        params = {
            "PhoneNumberSet": [e164(notification.phone)],
            "SmsSdkAppId": self.app_id,
            "SignName": self.sign_name,
            "TemplateId": self.template_id,
            "TemplateParamSet": [w.level, w.what, w.where, w.link],
            "SessionContext": notification.key,
        }
        try:
            resp = await self.api.call("SendSms", params)
        except httpx.HTTPError as exc:
            return transport_failure("SendSms", exc)
        body, failed = answer("SendSms", resp)
        if failed is not None:
            return failed
        statuses = body.get("SendStatusSet") or [{}]
        status = statuses[0]
        code = str(status.get("Code", ""))
        if code == "Ok":
            serial = str(status.get("SerialNo", ""))
            return Delivery(True, f"SendSms: Ok, SerialNo {serial}", ref=serial)
        return refusal("SendSms", code, str(status.get("Message")), body.get("RequestId", ""))

    async def close(self) -> None:
        await self.api.close()


class TencentVoiceChannel:
    """A voice call that reads the alarm aloud, through Tencent Cloud `SendTtsVoice`."""

    name = "voice_tencent"
    once_only = True

    def __init__(
        self, api: TencentApi, *, app_id: str, template_id: str, play_times: int = 2
    ) -> None:
        self.api = api
        self.app_id = app_id
        self.template_id = template_id
        self.play_times = play_times

    async def send(self, notification: Notification) -> Delivery:
        if not notification.phone:
            return Delivery(False, "voice_tencent: no phone number on file")
        w = words(notification)
        params = {
            "TemplateId": self.template_id,
            "TemplateParamSet": [w.level, w.what, w.where],
            "CalledNumber": e164(notification.phone),
            "VoiceSdkAppid": self.app_id,
            "PlayTimes": self.play_times,
            "SessionContext": notification.key,
        }
        try:
            resp = await self.api.call("SendTtsVoice", params)
        except httpx.HTTPError as exc:
            return transport_failure("SendTtsVoice", exc)
        body, failed = answer("SendTtsVoice", resp)
        if failed is not None:
            return failed
        call_id = str((body.get("SendStatus") or {}).get("CallId", ""))
        return Delivery(True, f"SendTtsVoice: CallId {call_id}", ref=call_id)

    async def close(self) -> None:
        await self.api.close()
