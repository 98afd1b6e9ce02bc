"""Work-chat group robots: WeCom (企业微信) group robot, DingTalk (钉钉) custom robot, Feishu
(飞书) custom bot. Each posts the alarm's short text into a group through its webhook and
names the person (WeCom and DingTalk @ their mobile number). Each robot takes 20 messages a
minute here (DingTalk's documented limit, and WeCom's; Feishu allows 100): a local window
holds back the 21st rather than have the vendor throttle the robot (DingTalk for 10 minutes).

A repeat in a group is noise, not a second call to someone's phone: these are not
`once_only`; a retry after an unknown outcome may post twice."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from cloud.notify.base import Delivery, Notification
from cloud.notify.vendor import RateWindow, mainland_number, transport_failure

PER_MINUTE = 20
LIMIT_WAIT_S = 60.0


def _who(n: Notification) -> str:
    return f"{n.name}：" if n.name and n.target != "duty_room" else ""


class _Robot:
    """One send path for every robot: the local rate window, the POST, the HTTP status, then
    the vendor's code (0: posted) judged by the robot's tables of codes."""

    name = ""
    once_only = False
    auth: frozenset[int] = frozenset()  # the key or signature refused: check the settings
    limit: frozenset[int] = frozenset()  # rate limited: wait LIMIT_WAIT_S
    transient = frozenset({-1})  # the vendor's system busy (and an answer without a code)

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        per_minute: int = PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.client = httpx.AsyncClient(timeout=timeout_s)
        self.window = RateWindow(per_minute, 60.0, clock)

    async def send(self, notification: Notification) -> Delivery:
        held = self.window.local_limit(self.name)
        if held is not None:
            return held
        url, message = self.request(notification)
        try:
            resp = await self.client.post(url, json=message)
        except httpx.HTTPError as exc:
            return transport_failure(self.name, exc)
        if resp.status_code == 429:
            return Delivery(False, f"{self.name}: HTTP 429", retry=True, retry_after_s=LIMIT_WAIT_S)
        if resp.status_code >= 500:
            return Delivery(False, f"{self.name}: HTTP {resp.status_code}", retry=True)
        try:
            body: dict[str, Any] = resp.json()
        except ValueError:
            return Delivery(False, f"{self.name}: HTTP {resp.status_code}: not JSON", retry=True)
        return self.judge(*self.outcome(body))

    def request(self, n: Notification) -> tuple[str, dict[str, Any]]:
        """Where to POST the notification, and the JSON body."""
        raise NotImplementedError

    def outcome(self, body: dict[str, Any]) -> tuple[int, str]:
        """The vendor's code and message in its answer."""
        return int(body.get("errcode", -1)), str(body.get("errmsg", ""))

    def judge(self, code: int, message: str) -> Delivery:
        if code == 0:
            return Delivery(True, f"{self.name}: ok")
        detail = f"{self.name}: {code} {message}"
        if code in self.auth:
            return Delivery(False, f"{detail}; key or signature refused, check settings")
        if code in self.limit:
            return Delivery(
                False, f"{detail}; rate limited", retry=True, retry_after_s=LIMIT_WAIT_S
            )
        return Delivery(False, detail, retry=code in self.transient)

    async def close(self) -> None:
        await self.client.aclose()


class _SignedRobot(_Robot):
    """A robot whose webhook wants each message signed with its secret and the wall-clock
    time (the vendor refuses a time more than an hour off)."""

    def __init__(
        self,
        url: str,
        *,
        secret: str,
        timeout_s: float,
        wall_clock: Callable[[], float] = time.time,
        **kw: Any,
    ) -> None:
        super().__init__(url, timeout_s=timeout_s, **kw)
        self.secret = secret
        self.wall_clock = wall_clock


class WeComRobot(_Robot):
    """WeCom group robot: POST …/cgi-bin/webhook/send?key=KEY (the key is in the URL)."""

    name = "wecom"
    auth = frozenset({93000, 40001, 40014})  # invalid webhook key
    limit = frozenset({45009})  # api freq out of limit

    def request(self, n: Notification) -> tuple[str, dict[str, Any]]:
        text: dict[str, Any] = {"content": f"{_who(n)}{n.text_zh()}"}
        if n.phone:
            text["mentioned_mobile_list"] = [mainland_number(n.phone)]
        return self.url, {"msgtype": "text", "text": text}


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}")), URL-encoded."""
    digest = hmac.new(
        secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return quote(base64.b64encode(digest).decode(), safe="")


class DingTalkRobot(_SignedRobot):
    """DingTalk custom robot with signing: POST …/robot/send?access_token=T&timestamp=MS&sign=S."""

    name = "dingtalk"
    auth = frozenset({310000, 300001, 400101})  # sign / keyword / ip; token
    limit = frozenset({130101, 90030})  # send too fast (20 a minute)

    def request(self, n: Notification) -> tuple[str, dict[str, Any]]:
        stamp = int(self.wall_clock() * 1000)
        joiner = "&" if "?" in self.url else "?"
        url = f"{self.url}{joiner}timestamp={stamp}&sign={dingtalk_sign(self.secret, stamp)}"
        body: dict[str, Any] = {"msgtype": "text", "text": {"content": f"{_who(n)}{n.text_zh()}"}}
        if n.phone:
            body["at"] = {"atMobiles": [mainland_number(n.phone)], "isAtAll": False}
        return url, body


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b""))."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


class FeishuBot(_SignedRobot):
    """Feishu custom bot with signing: POST …/open-apis/bot/v2/hook/TOKEN, timestamp and sign
    in the body."""

    name = "feishu"
    auth = frozenset({19021, 19022})  # sign or timestamp; ip not allowed
    limit = frozenset({9499, 11232})  # too many requests; frequency limited

    def request(self, n: Notification) -> tuple[str, dict[str, Any]]:
        stamp = int(self.wall_clock())
        return self.url, {
            "timestamp": str(stamp),
            "sign": feishu_sign(self.secret, stamp),
            "msg_type": "text",
            "content": {"text": f"{_who(n)}{n.text_zh()}"},
        }

    def outcome(self, body: dict[str, Any]) -> tuple[int, str]:
        code = body.get("code", body.get("StatusCode", -1))
        return int(code), str(body.get("msg", body.get("StatusMessage", "")))
