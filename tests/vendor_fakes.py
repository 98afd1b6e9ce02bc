"""A local stand-in for the notification vendors, on a free loopback port: Aliyun SendSms and
SingleCallByTts (RPC signature v1), Tencent Cloud SendSms and SendTtsVoice (TC3-HMAC-SHA256),
the WeCom group robot, the DingTalk custom robot and the Feishu bot. Each checks the request
shape and signature as the vendor documents it, answers with the vendor's error codes, keeps
the vendor's rate limits, and records what it accepted with the time it arrived.

It can be told to misbehave on the next requests to one product (`fail_next`):
- "error": the vendor's own system error (a transient refusal),
- "hang":  accept and record the message, then never answer (the client times out: the
           message went out, the answer was lost),
- "down":  HTTP 503 without recording anything.

And it can report a call's result to a receipt URL as the vendor does (`report_call`).

It runs uvicorn in a thread with its own event loop, so a test, or the benchmark, can use it
from anywhere; `stop()` ends it (and releases hung requests)."""

from __future__ import annotations

import asyncio
import base64
import calendar
import contextlib
import hashlib
import hmac
import json
import re
import socket
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cloud.notify.aliyun import rpc_signature
from cloud.notify.tencent import tc3_authorization

ALIYUN_KEY_ID, ALIYUN_SECRET = "LTAI5tFakeKeyId", "aliyun-fake-secret"
TENCENT_ID, TENCENT_KEY = "AKIDfakeSecretId", "tencent-fake-secret-key"
SMS_SIGN, SMS_TEMPLATE, TTS_CODE, SHOW_NUMBER = (
    "锦江街道",
    "SMS_4010001",
    "TTS_4010002",
    "057112345678",
)
TC_SMS_APP, TC_SMS_TEMPLATE, TC_VMS_APP, TC_VMS_TEMPLATE = (
    "1400000001",
    "1100001",
    "1400000002",
    "2200002",
)
WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
DINGTALK_TOKEN, DINGTALK_SECRET = "dt-token-0001", "SECfakedingtalksecret0001"
FEISHU_TOKEN, FEISHU_SECRET = "fs-hook-0001", "feishu-fake-secret"

PRODUCTS = (
    "sms_aliyun",
    "voice_aliyun",
    "sms_tencent",
    "voice_tencent",
    "wecom",
    "dingtalk",
    "feishu",
)
#: (messages, window in seconds): per called number for SMS and voice, per robot for robots
DOCUMENTED_LIMITS: dict[str, tuple[int, float]] = {
    "sms_aliyun": (1, 60.0),  # default flow control: 1 a minute per number
    "voice_aliyun": (1, 60.0),  # 1 a minute per called number (also 5/h, 20/day)
    "sms_tencent": (1, 30.0),  # one message in 30 s per number
    "voice_tencent": (1, 60.0),
    "wecom": (20, 60.0),  # 20 messages a minute per robot
    "dingtalk": (20, 60.0),
    "feishu": (100, 60.0),  # 100 a minute per bot (also 5 a second)
}


@dataclass(frozen=True)
class Received:
    product: str
    at: float  # time.time() when the request arrived
    phone: str
    text: str  # the template parameters joined, or the robot's text
    out_id: str  # OutId / SessionContext ("" for robots)
    ref: str  # BizId / CallId / SerialNo the fake answered with
    body: dict[str, Any]


@dataclass
class VendorFake:
    limits: dict[str, tuple[int, float]] = field(default_factory=lambda: dict(DOCUMENTED_LIMITS))
    hang_s: float = 30.0
    port: int = 0
    _received: list[Received] = field(default_factory=list)
    _faults: dict[str, deque[str]] = field(default_factory=lambda: defaultdict(deque))
    _sent: dict[tuple[str, str], deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _nonces: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _release: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    #: refused requests, by product and vendor code (what the vendor would have logged)
    refusals: list[tuple[str, str]] = field(default_factory=list)

    # ---- addresses -------------------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, product: str) -> str:
        return {
            "sms_aliyun": f"{self.base}/aliyun/dysmsapi/",
            "voice_aliyun": f"{self.base}/aliyun/dyvmsapi/",
            "sms_tencent": f"{self.base}/tencent/sms/",
            "voice_tencent": f"{self.base}/tencent/vms/",
            "wecom": f"{self.base}/cgi-bin/webhook/send?key={WECOM_KEY}",
            "dingtalk": f"{self.base}/robot/send?access_token={DINGTALK_TOKEN}",
            "feishu": f"{self.base}/open-apis/bot/v2/hook/{FEISHU_TOKEN}",
        }[product]

    # ---- control ---------------------------------------------------------------------------

    def fail_next(self, product: str, *modes: str) -> None:
        with self._lock:
            self._faults[product].extend(modes)

    def received(self, product: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received if product is None or r.product == product]

    def wait_for(self, product: str, count: int, timeout: float = 10.0) -> list[Received]:
        """The first `count` messages of a product, waiting (polling) up to `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.received(product)
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.01)

    async def await_for(self, product: str, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.received(product)
            if len(got) >= count or time.monotonic() > deadline:
                return got
            await asyncio.sleep(0.01)

    def report_call(self, call: Received, receipt_url: str, *, answered: bool) -> httpx.Response:
        """The vendor's receipt for a call it placed, POSTed to our receipt URL."""
        if call.product == "voice_aliyun":
            body: Any = [
                {
                    "call_id": call.ref,
                    "start_time": "2027-01-15 16:00:01" if answered else "",
                    "end_time": "2027-01-15 16:00:13" if answered else "",
                    "duration": "12" if answered else "0",
                    "status_code": "200000" if answered else "200005",
                    "status_msg": "用户听到语音" if answered else "用户未接听",
                    "out_id": call.out_id,
                    "dtmf": "",
                }
            ]
        else:
            body = {
                "voiceprompt_callback": {
                    "result": "0" if answered else "1",
                    "accept_time": "1800000012" if answered else "0",
                    "call_from": "",
                    "callid": call.ref,
                    "end_calltime": "1800000024",
                    "fee": "1" if answered else "0",
                    "mobile": call.phone.removeprefix("+86"),
                    "nationcode": "86",
                    "start_calltime": "1800000001",
                }
            }
        return httpx.post(receipt_url, json=body, timeout=5)

    # ---- running ---------------------------------------------------------------------------

    def start(self) -> VendorFake:
        sock = socket.socket()
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app(), log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the vendor fake did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._release is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._release.set)
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    # ---- behaviour shared by the products -------------------------------------------------

    def _fault(self, product: str) -> str:
        with self._lock:
            queue = self._faults[product]
            return queue.popleft() if queue else ""

    def _over_limit(self, product: str, who: str) -> bool:
        count, window = self.limits.get(product, (0, 0.0))
        if count <= 0:
            return False
        now = time.monotonic()
        with self._lock:
            sent = self._sent[(product, who)]
            while sent and sent[0] <= now - window:
                sent.popleft()
            if len(sent) >= count:
                return True
            sent.append(now)
            return False

    def _record(self, item: Received) -> None:
        with self._lock:
            self._received.append(item)

    def _refuse(self, product: str, code: str) -> None:
        with self._lock:
            self.refusals.append((product, code))

    async def _hang(self) -> None:
        """Hold the answer back (until `hang_s` has passed or the fake stops)."""
        if self._release is None:
            self._loop = asyncio.get_running_loop()
            self._release = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release.wait(), self.hang_s)

    # ---- the app ---------------------------------------------------------------------------

    def app(self) -> FastAPI:
        app = FastAPI()
        app.post("/aliyun/{product}/")(self._aliyun)
        app.post("/tencent/{product}/")(self._tencent)
        app.post("/cgi-bin/webhook/send")(self._wecom)
        app.post("/robot/send")(self._dingtalk)
        app.post("/open-apis/bot/v2/hook/{token}")(self._feishu)
        return app

    # Aliyun: RPC style, form body, signature v1
    async def _aliyun(self, product: str, request: Request) -> JSONResponse:
        name = {"dysmsapi": "sms_aliyun", "dyvmsapi": "voice_aliyun"}[product]
        params = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        request_id = str(uuid.uuid4()).upper()

        def answer(
            code: str, message: str, status: int = 200, more: dict[str, str] | None = None
        ) -> JSONResponse:
            if code != "OK":
                self._refuse(name, code)
            return JSONResponse(
                {"RequestId": request_id, "Code": code, "Message": message, **(more or {})},
                status_code=status,
            )

        signature = params.pop("Signature", "")
        if params.get("AccessKeyId") != ALIYUN_KEY_ID:
            return answer("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)
        if (
            params.get("SignatureMethod") != "HMAC-SHA1"
            or params.get("SignatureVersion") != "1.0"
            or not params.get("SignatureNonce")
        ):
            return answer("IncompleteSignature", "The request signature does not conform.", 400)
        expected = rpc_signature(request.method, params, ALIYUN_SECRET)
        if not hmac.compare_digest(signature, expected):
            return answer(
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation.",
                400,
            )
        try:
            stamp = calendar.timegm(time.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ"))
        except (KeyError, ValueError):
            return answer("MissingTimestamp", "Timestamp is mandatory for this action.", 400)
        if abs(stamp - time.time()) > 15 * 60:
            return answer("InvalidTimeStamp.Expired", "Specified time stamp is expired.", 400)
        with self._lock:
            if params["SignatureNonce"] in self._nonces:
                nonce_used = True
            else:
                self._nonces.add(params["SignatureNonce"])
                nonce_used = False
        if nonce_used:
            return answer("SignatureNonceUsed", "Specified signature nonce was used already.", 400)
        if params.get("Version") != "2017-05-25" or params.get("Format") != "JSON":
            return answer("InvalidVersion", "Specified parameter Version is not valid.", 400)
        fault = self._fault(name)
        if fault == "down":
            return JSONResponse({"Code": "ServiceUnavailable"}, status_code=503)
        if fault == "error":
            return answer("isp.SYSTEM_ERROR", "系统错误")
        if name == "sms_aliyun":
            if params.get("Action") != "SendSms":
                return answer("InvalidAction.NotFound", "Specified api is not found.", 404)
            phone = params.get("PhoneNumbers", "")
            if params.get("SignName") != SMS_SIGN:
                return answer("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
            if params.get("TemplateCode") != SMS_TEMPLATE:
                return answer("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
            ref_field, ref = "BizId", f"{int(time.time() * 1000)}^{uuid.uuid4().int % 10**10}"
            try:
                template = json.loads(params.get("TemplateParam", "{}"))
            except ValueError:
                return answer("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
            if set(template) != {"level", "what", "where", "link"}:
                return answer("isv.TEMPLATE_MISSING_PARAMETERS", "模板变量缺少对应参数值")
            text = "{level}|{what}|{where}|{link}".format(**template)
        else:
            if params.get("Action") != "SingleCallByTts":
                return answer("InvalidAction.NotFound", "Specified api is not found.", 404)
            phone = params.get("CalledNumber", "")
            if params.get("TtsCode") != TTS_CODE:
                return answer("isv.TTS_TEMPLATE_ILLEGAL", "TTS模板不存在")
            if params.get("CalledShowNumber") != SHOW_NUMBER:
                return answer("isv.DISPLAY_NUMBER_ILLEGAL", "号显号码不合法")
            ref_field, ref = "CallId", f"116012854210^{uuid.uuid4().int % 10**12}"
            template = json.loads(params.get("TtsParam", "{}"))
            text = "{level}|{what}|{where}".format(**template)
        if not re.fullmatch(r"1[3-9][0-9]{9}", phone):
            return answer("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        if self._over_limit(name, phone):
            return answer("isv.BUSINESS_LIMIT_CONTROL", "触发号码天级流控Permits:1")
        self._record(Received(name, time.time(), phone, text, params.get("OutId", ""), ref, params))
        if fault == "hang":
            await self._hang()
        return answer("OK", "OK", more={ref_field: ref})

    # Tencent Cloud: API 3.0, JSON body, TC3-HMAC-SHA256
    async def _tencent(self, product: str, request: Request) -> JSONResponse:
        name = {"sms": "sms_tencent", "vms": "voice_tencent"}[product]
        payload = await request.body()
        request_id = str(uuid.uuid4())

        def error(code: str, message: str) -> JSONResponse:
            self._refuse(name, code)
            return JSONResponse(
                {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}}
            )

        auth = request.headers.get("authorization", "")
        found = re.fullmatch(
            r"TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/(\w+)/tc3_request,"
            r" SignedHeaders=content-type;host, Signature=([0-9a-f]{64})",
            auth,
        )
        if found is None:
            return error("AuthFailure.InvalidAuthorization", "Authorization is invalid.")
        secret_id, _date, service, _sig = found.groups()
        if secret_id != TENCENT_ID:
            return error("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
        try:
            stamp = int(request.headers.get("x-tc-timestamp", ""))
        except ValueError:
            return error("MissingParameter", "X-TC-Timestamp is missing.")
        if abs(stamp - time.time()) > 300:
            return error("AuthFailure.SignatureExpire", "Signature expired.")
        if request.headers.get("content-type") != "application/json; charset=utf-8":
            return error(
                "AuthFailure.SignatureFailure", "The provided credentials could not be validated."
            )
        expected = tc3_authorization(
            secret_id=secret_id,
            secret_key=TENCENT_KEY,
            service=product,
            host=request.headers.get("host", ""),
            payload=payload,
            timestamp=stamp,
        )
        if service != product or not hmac.compare_digest(auth, expected):
            return error(
                "AuthFailure.SignatureFailure",
                "The provided credentials could not be validated. Please check your signature"
                " is correct.",
            )
        version = {"sms": "2021-01-11", "vms": "2020-09-02"}[product]
        action = {"sms": "SendSms", "vms": "SendTtsVoice"}[product]
        if (
            request.headers.get("x-tc-version") != version
            or request.headers.get("x-tc-action") != action
        ):
            return error("InvalidAction", "The action or its version is not valid.")
        fault = self._fault(name)
        if fault == "down":
            return JSONResponse({}, status_code=503)
        if fault == "error":
            return error("InternalError.Timeout", "请求下发短信/语音超时，请参考API接入文档。")
        params = json.loads(payload)
        context = params.get("SessionContext", "")
        items = params.get("TemplateParamSet", [])
        if name == "sms_tencent":
            if params.get("SmsSdkAppId") != TC_SMS_APP:
                return error("FailedOperation.SmsSdkAppIdVerifyFail", "SmsSdkAppId 校验失败")
            if params.get("SignName") != SMS_SIGN or params.get("TemplateId") != TC_SMS_TEMPLATE:
                return error(
                    "FailedOperation.TemplateIncorrectOrUnapproved", "模板未审批或内容不匹配"
                )
            [phone] = params.get("PhoneNumberSet") or [""]
            if len(items) != 4:
                return error(
                    "InvalidParameterValue.TemplateParameterFormatError", "模板参数格式错误"
                )

            def sent(status: dict[str, Any]) -> JSONResponse:
                return JSONResponse(
                    {"Response": {"SendStatusSet": [status], "RequestId": request_id}}
                )

            if not re.fullmatch(r"\+861[3-9][0-9]{9}", phone):
                return sent(
                    {"Code": "InvalidParameterValue.IncorrectPhoneNumber", "PhoneNumber": phone}
                )
            if self._over_limit(name, phone):
                self._refuse(name, "LimitExceeded.PhoneNumberThirtySecondLimit")
                return sent(
                    {
                        "SerialNo": "",
                        "PhoneNumber": phone,
                        "Fee": 0,
                        "SessionContext": context,
                        "Code": "LimitExceeded.PhoneNumberThirtySecondLimit",
                        "Message": "单个手机号30秒内下发短信条数超过设定的上限",
                        "IsoCode": "CN",
                    }
                )
            ref = f"2645:{uuid.uuid4().int % 10**20}"
            answer = sent(
                {
                    "SerialNo": ref,
                    "PhoneNumber": phone,
                    "Fee": 1,
                    "SessionContext": context,
                    "Code": "Ok",
                    "Message": "send success",
                    "IsoCode": "CN",
                }
            )
        else:
            if (
                params.get("VoiceSdkAppid") != TC_VMS_APP
                or params.get("TemplateId") != TC_VMS_TEMPLATE
            ):
                return error(
                    "FailedOperation.TemplateIncorrectOrUnapproved", "模板未审批或内容不匹配"
                )
            phone = params.get("CalledNumber", "")
            if not re.fullmatch(r"\+861[3-9][0-9]{9}", phone):
                return error("InvalidParameterValue.IncorrectPhoneNumber", "手机号格式错误")
            if self._over_limit(name, phone):
                return error("LimitExceeded.FrequencyLimit", "单个号码呼叫频率超过上限")
            ref = f"{uuid.uuid4()}"
            answer = JSONResponse(
                {
                    "Response": {
                        "SendStatus": {"CallId": ref, "SessionContext": context},
                        "RequestId": request_id,
                    }
                }
            )
        self._record(Received(name, time.time(), phone, "|".join(items), context, ref, params))
        if fault == "hang":
            await self._hang()
        return answer

    # WeCom group robot
    async def _wecom(self, request: Request) -> JSONResponse:
        if request.query_params.get("key") != WECOM_KEY:
            self._refuse("wecom", "93000")
            return JSONResponse({"errcode": 93000, "errmsg": "invalid webhook url, hint: [key]"})
        body = json.loads(await request.body())
        if body.get("msgtype") not in ("text", "markdown") or not body.get(body["msgtype"], {}).get(
            "content"
        ):
            self._refuse("wecom", "40008")
            return JSONResponse({"errcode": 40008, "errmsg": "invalid message type"})
        return await self._robot(
            "wecom",
            body,
            body[body["msgtype"]]["content"],
            ",".join(body.get("text", {}).get("mentioned_mobile_list", [])),
            {"errcode": 45009, "errmsg": "api freq out of limit"},
            {"errcode": 0, "errmsg": "ok"},
        )

    # DingTalk custom robot, signed
    async def _dingtalk(self, request: Request) -> JSONResponse:
        q = request.query_params
        if q.get("access_token") != DINGTALK_TOKEN:
            self._refuse("dingtalk", "300001")
            return JSONResponse({"errcode": 300001, "errmsg": "token is not exist"})
        if not _robot_signed(
            q.get("timestamp"), q.get("sign"), DINGTALK_SECRET, per_second=1000, keyed=False
        ):
            self._refuse("dingtalk", "310000")
            return JSONResponse(
                {
                    "errcode": 310000,
                    "errmsg": "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]",
                }
            )
        body = json.loads(await request.body())
        return await self._robot(
            "dingtalk",
            body,
            body.get("text", {}).get("content", ""),
            ",".join(body.get("at", {}).get("atMobiles", [])),
            {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"},
            {"errcode": 0, "errmsg": "ok"},
        )

    # Feishu custom bot, signed
    async def _feishu(self, token: str, request: Request) -> JSONResponse:
        if token != FEISHU_TOKEN:
            self._refuse("feishu", "19001")
            return JSONResponse(
                {
                    "code": 19001,
                    "msg": "param invalid: incoming webhook access token invalid",
                    "data": {},
                }
            )
        body = json.loads(await request.body())
        if not _robot_signed(
            body.get("timestamp"), body.get("sign"), FEISHU_SECRET, per_second=1, keyed=True
        ):
            self._refuse("feishu", "19021")
            return JSONResponse(
                {
                    "code": 19021,
                    "msg": "sign match fail or timestamp is not within one hour from current time",
                    "data": {},
                }
            )
        text = body.get("content", {}).get("text", "")
        return await self._robot(
            "feishu",
            body,
            text,
            "",
            {
                "code": 11232,
                "msg": "frequency limited psm[lark.oapi.app_platform_runtime]appID[1]",
                "data": {},
            },
            {"code": 0, "msg": "success", "data": {}, "StatusCode": 0, "StatusMessage": "success"},
        )

    async def _robot(
        self,
        name: str,
        body: dict[str, Any],
        text: str,
        mentioned: str,
        limited: dict[str, Any],
        ok: dict[str, Any],
    ) -> JSONResponse:
        fault = self._fault(name)
        if fault == "down":
            return JSONResponse({}, status_code=503)
        if fault == "error":
            self._refuse(name, "-1")
            if name == "feishu":
                return JSONResponse({"code": -1, "msg": "system busy", "data": {}})
            return JSONResponse({"errcode": -1, "errmsg": "system busy"})
        if self._over_limit(name, "robot"):
            self._refuse(name, str(limited.get("errcode", limited.get("code"))))
            return JSONResponse(limited)
        self._record(Received(name, time.time(), mentioned, text, "", "", body))
        if fault == "hang":
            await self._hang()
        return JSONResponse(ok)


def _robot_signed(
    stamp: object, sign: object, secret: str, *, per_second: int, keyed: bool
) -> bool:
    """A DingTalk or Feishu robot's signature: base64 of HMAC-SHA256 over f"{stamp}\\n{secret}"
    (DingTalk: keyed with the secret, stamp in ms; Feishu, `keyed`: that string is the key of
    an empty message, stamp in s), with a stamp at most an hour off."""
    try:
        at = int(str(stamp))
    except ValueError:
        return False
    to_sign = f"{at}\n{secret}".encode()
    key, message = (to_sign, b"") if keyed else (secret.encode(), to_sign)
    expected = base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
    fresh = abs(at / per_second - time.time()) <= 3600
    return fresh and isinstance(sign, str) and hmac.compare_digest(sign.encode(), expected.encode())
