"""Aliyun (阿里云) SMS `SendSms` (dysmsapi) and voice notification `SingleCallByTts` (dyvmsapi),
through their documented RPC-style HTTP API: every parameter in a form, signed with signature
version 1 (HMAC-SHA1 over the canonicalised query, key = AccessKeySecret + "&").

Not the vendor's SDK: alibabacloud-dysmsapi20170525 brings the Tea runtime and a second HTTP
stack for two calls; these are two POSTs on the httpx client the cloud already uses, with our
own timeouts. The notification's key goes out as `OutId`, so the vendor's receipts name it.
Templates: the SMS template takes ${level} ${what} ${where} ${link}, the TTS template
${level} ${what} ${where} (docs/notifications.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from cloud.notify.base import Delivery, Notification
from cloud.notify.vendor import mainland_number, transport_failure, words

API_VERSION = "2017-05-25"  # both dysmsapi and dyvmsapi

#: codes that mean our credentials or signature were refused: no use trying again
AUTH_CODES = frozenset(
    {
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "InvalidTimeStamp.Expired",
        "SignatureNonceUsed",
        "Forbidden.RAM",
        "isp.RAM_PERMISSION_DENY",
    }
)
#: flow control (per number: 1/min, 5/h, … ; per account: QPS)
LIMIT_CODES = frozenset({"isv.BUSINESS_LIMIT_CONTROL", "Throttling", "Throttling.User"})
#: the vendor's own trouble: worth another try
TRANSIENT_CODES = frozenset({"isp.SYSTEM_ERROR", "ServiceUnavailable", "InternalError"})
#: after a flow-control refusal, the next try waits this long (the per-number minute)
LIMIT_WAIT_S = 60.0


def percent(value: str) -> str:
    """RFC 3986 percent-encoding as the signature wants it (space %20, * %2A, ~ kept)."""
    return quote(value, safe="~")


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(f"{percent(k)}={percent(v)}" for k, v in sorted(params.items()))


def rpc_signature(method: str, params: Mapping[str, str], secret: str) -> str:
    """Signature version 1.0: base64(HMAC-SHA1(secret + "&", METHOD&%2F&encoded-query))."""
    to_sign = f"{method}&{percent('/')}&{percent(canonical_query(params))}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class AliyunRpc:
    """One signed RPC call to an Aliyun product endpoint."""

    def __init__(
        self,
        endpoint: str,
        key_id: str,
        secret: str,
        *,
        timeout_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint = endpoint
        self.key_id = key_id
        self.secret = secret
        self.clock = clock
        self.client = httpx.AsyncClient(timeout=timeout_s)

    def signed(self, action: str, params: Mapping[str, str]) -> dict[str, str]:
        stamp = datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        full = {
            "AccessKeyId": self.key_id,
            "Action": action,
            "Format": "JSON",
            "RegionId": "cn-hangzhou",
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "Timestamp": stamp,
            "Version": API_VERSION,
            **params,
        }
        full["Signature"] = rpc_signature("POST", full, self.secret)
        return full

    async def call(self, action: str, params: Mapping[str, str]) -> httpx.Response:
        return await self.client.post(self.endpoint, data=self.signed(action, params))

    async def close(self) -> None:
        await self.client.aclose()


def outcome(what: str, resp: httpx.Response, ref_field: str) -> Delivery:
    """The vendor's answer as a delivery: Code OK, or why not and whether to try again."""
    try:
        body: dict[str, Any] = resp.json()
    except ValueError:
        body = {}
    code = str(body.get("Code", ""))
    message = str(body.get("Message", resp.text[:120]))
    request = body.get("RequestId", "")
    if resp.status_code == 200 and code == "OK":
        ref = str(body.get(ref_field, ""))
        return Delivery(True, f"{what}: OK, {ref_field} {ref}", ref=ref)
    detail = f"{what}: HTTP {resp.status_code} {code or '-'}: {message} (RequestId {request})"
    if code in AUTH_CODES or resp.status_code in (401, 403):
        return Delivery(False, f"{detail}; credentials or signature refused, check settings")
    if code in LIMIT_CODES or resp.status_code == 429:
        return Delivery(False, f"{detail}; rate limited", retry=True, retry_after_s=LIMIT_WAIT_S)
    if code in TRANSIENT_CODES or resp.status_code >= 500:
        return Delivery(False, detail, retry=True)
    return Delivery(False, detail)


class AliyunSmsChannel:
    """SMS through Aliyun `SendSms`."""

    name = "sms_aliyun"
    once_only = True

    def __init__(self, rpc: AliyunRpc, *, sign_name: str, template_code: str) -> None:
        self.rpc = rpc
        self.sign_name = sign_name
        self.template_code = template_code

    async def send(self, notification: Notification) -> Delivery:
        if not notification.phone:
            return Delivery(False, "sms_aliyun: no phone number on file")
        w = words(notification)
        params = {
            "PhoneNumbers": mainland_number(notification.phone),
            "SignName": self.sign_name,
            "TemplateCode": self.template_code,
            "TemplateParam": json.dumps(
                {"level": w.level, "what": w.what, "where": w.where, "link": w.link},
                ensure_ascii=False,
            ),
            "OutId": notification.key,
        }
        try:
            resp = await self.rpc.call("SendSms", params)
        except httpx.HTTPError as exc:
            return transport_failure("SendSms", exc)
        return outcome("SendSms", resp, "BizId")

    async def close(self) -> None:
        await self.rpc.close()


class AliyunVoiceChannel:
    """A voice call that reads the alarm aloud, through Aliyun `SingleCallByTts`. Whether it
    was answered arrives later as a `VoiceReport` receipt (cloud/notify/receipts.py)."""

    name = "voice_aliyun"
    once_only = True

    def __init__(
        self, rpc: AliyunRpc, *, tts_code: str, show_number: str, play_times: int = 2
    ) -> None:
        self.rpc = rpc
        self.tts_code = tts_code
        self.show_number = show_number
        self.play_times = play_times

    async def send(self, notification: Notification) -> Delivery:
        if not notification.phone:
            return Delivery(False, "voice_aliyun: no phone number on file")
        w = words(notification)
        params = {
            "CalledShowNumber": self.show_number,
            "CalledNumber": mainland_number(notification.phone),
            "TtsCode": self.tts_code,
            "TtsParam": json.dumps(
                {"level": w.level, "what": w.what, "where": w.where}, ensure_ascii=False
            ),
            "PlayTimes": str(self.play_times),
            "OutId": notification.key,
        }
        try:
            resp = await self.rpc.call("SingleCallByTts", params)
        except httpx.HTTPError as exc:
            return transport_failure("SingleCallByTts", exc)
        return outcome("SingleCallByTts", resp, "CallId")

    async def close(self) -> None:
        await self.rpc.close()
