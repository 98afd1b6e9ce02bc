"""A fire alarm reaches the grid worker by SMS and by a voice call within the 15 s the policy
allows, through the whole cloud (a smoke event over the real broker, ingest, the rules, the
escalator, the channels built from the settings) to the vendor fake; the call's result comes
back as the vendor's receipt and is recorded on the alarm."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from cloud.settings import AliyunSettings, TencentSettings
from tests import vendor_fakes as v
from tests.cloud.conftest import (
    Publisher,
    cloud_settings,
    eventually,
    forget_gateway_status,
    running_cloud,
    signed_in,
)
from tests.cloud.helpers import rules_file
from tests.cloud.ingest.test_ingest import event
from tests.servers import Mosquitto

TOKEN = "r3ceipt-t0ken"


@pytest.fixture
def fake() -> Iterator[v.VendorFake]:
    server = v.VendorFake().start()
    try:
        yield server
    finally:
        server.stop()


def vendor_settings(fake: v.VendorFake) -> dict[str, Any]:
    return {
        "aliyun": AliyunSettings(
            access_key_id=v.ALIYUN_KEY_ID,
            access_key_secret=SecretStr(v.ALIYUN_SECRET),
            sms_endpoint=fake.url("sms_aliyun"),
            sms_sign_name=v.SMS_SIGN,
            sms_template_code=v.SMS_TEMPLATE,
            voice_endpoint=fake.url("voice_aliyun"),
            voice_tts_code=v.TTS_CODE,
            voice_show_number=v.SHOW_NUMBER,
        ),
        "tencent": TencentSettings(
            secret_id=v.TENCENT_ID,
            secret_key=SecretStr(v.TENCENT_KEY),
            sms_endpoint=fake.url("sms_tencent"),
            sms_app_id=v.TC_SMS_APP,
            sms_sign_name=v.SMS_SIGN,
            sms_template_id=v.TC_SMS_TEMPLATE,
            voice_endpoint=fake.url("voice_tencent"),
            voice_app_id=v.TC_VMS_APP,
            voice_template_id=v.TC_VMS_TEMPLATE,
        ),
        "case_url": "https://duty.example.cn/?alarm={id}",
        "receipt_token": SecretStr(TOKEN),
        "notify_timeout_s": 5.0,
    }


@pytest.mark.parametrize(
    ("sms", "voice", "receipt"),
    [
        ("sms_aliyun", "voice_tencent", "tencent-voice"),
        ("sms_tencent", "voice_aliyun", "aliyun-voice"),
    ],
)
async def test_a_fire_reaches_two_channels_in_time_and_the_call_result_is_recorded(
    tmp_path: Path,
    mosquitto: Mosquitto,
    fake: v.VendorFake,
    sms: str,
    voice: str,
    receipt: str,
) -> None:
    def change(data: dict[str, Any]) -> None:
        [fire] = [p for p in data["policies"] if p["name"] == "fire"]
        fire["notify"] = [{"to": "grid_worker", "via": [sms, voice]}]

    forget_gateway_status(mosquitto)
    settings = cloud_settings(
        tmp_path, mosquitto, rules_file=rules_file(tmp_path, change), **vendor_settings(fake)
    )
    pub = Publisher(mosquitto, "gw-ld01")
    try:
        async with running_cloud(settings) as running:
            client = await signed_in(running.url, "op")
            try:
                sent = event()
                pub.publish("sc/v1/gw-ld01/event", sent)
                [text] = await fake.await_for(sms, 1)
                [call] = await fake.await_for(voice, 1)
                at = datetime.fromisoformat(sent["ts"]).timestamp()
                assert text.at - at < 15 and call.at - at < 15
                assert "烟雾报警" in text.text and "?alarm=" in text.text
                assert text.phone.endswith("13800000001")  # 李网格, the grid's worker

                alarm = (await client.get("/api/alarms")).json()[0]
                url = f"{running.url}/api/receipts/{receipt}/{TOKEN}"

                async def delivered() -> list[dict[str, Any]]:
                    case = (await client.get(f"/api/alarms/{alarm['id']}")).json()
                    done = [n for n in case["notifications"] if n["status"] == "delivered"]
                    return done if len(done) == 2 else []

                await eventually(delivered)
                answer = await asyncio.to_thread(fake.report_call, call, url, answered=False)
                assert answer.status_code == 200
                assert answer.json() == (
                    {"result": 0, "errmsg": "OK"}
                    if receipt == "tencent-voice"
                    else {"code": 0, "msg": "接收成功"}
                )
                case = (await client.get(f"/api/alarms/{alarm['id']}")).json()
                # a wrong token, or a receipt that is not one, changes nothing
                async with httpx.AsyncClient(timeout=5) as outside:
                    wrong = await outside.post(url.replace(TOKEN, "guess"), json={})
                    junk = await outside.post(url, content=b"[{")
                    odd = await outside.post(url, json={"hello": 1})
            finally:
                await client.aclose()
    finally:
        pub.close()
    assert (wrong.status_code, junk.status_code, odd.status_code) == (404, 422, 422)
    notes = {n["channel"]: n for n in case["notifications"]}
    assert notes[sms]["status"] == notes[voice]["status"] == "delivered"
    assert not any("LATE" in n["detail"] for n in case["notifications"])
    assert notes[voice]["vendor_ref"] == call.ref
    assert notes[voice]["call_result"].startswith("未接")
    results = [h for h in case["history"] if h["action"] == "call_result"]
    assert len(results) == 1 and "not answered" in results[0]["detail"]
    assert len(fake.received(sms)) == len(fake.received(voice)) == 1
