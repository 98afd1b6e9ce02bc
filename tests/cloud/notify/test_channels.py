"""Each vendor channel against the local vendor fake (tests/vendor_fakes.py), which checks the
documented request shape and signature and keeps the documented rate limits: the happy path,
wrong credentials refused (and said so), the vendor's rate limit, the vendor's own error, and
a lost answer (the request went out, the answer never came)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from cloud.notify.aliyun import rpc_signature
from cloud.notify.robots import DingTalkRobot, FeishuBot, dingtalk_sign, feishu_sign
from cloud.notify.tencent import tc3_authorization
from tests import vendor_fakes as v
from tests.cloud.notify.helpers import build, expected_text, note

PRODUCTS = list(v.PRODUCTS)


@pytest.fixture
def fake() -> Iterator[v.VendorFake]:
    server = v.VendorFake(hang_s=10).start()
    try:
        yield server
    finally:
        server.stop()


# ---- the signatures against the vendors' own worked examples ---------------------------------


def test_aliyun_signature_matches_the_documented_example() -> None:
    """help.aliyun.com's example (DescribeRegions, AccessKey testid / testsecret)."""
    params = {
        "TimeStamp": "2016-02-23T12:46:24Z",
        "Format": "XML",
        "AccessKeyId": "testid",
        "Action": "DescribeRegions",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
        "Version": "2014-05-26",
        "SignatureVersion": "1.0",
    }
    assert rpc_signature("GET", params, "testsecret") == "CT9X0VtwR86fNWSnsc6v8YGOjuE="


def test_tencent_tc3_signature_matches_the_documented_example() -> None:
    """cloud.tencent.com's API 3.0 example (cvm DescribeInstances, timestamp 1551113065)."""
    payload = (
        '{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    )
    header = tc3_authorization(
        secret_id="AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
        secret_key="Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
        service="cvm",
        host="cvm.tencentcloudapi.com",
        payload=payload.encode(),
        timestamp=1551113065,
    )
    assert header.endswith(
        "Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    )
    assert "Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request" in header


def test_robot_signatures_follow_the_documented_recipes() -> None:
    import base64
    import hashlib
    import hmac
    from urllib.parse import unquote

    ding = unquote(dingtalk_sign("SECabc", 1700000000000))
    raw = hmac.new(b"SECabc", b"1700000000000\nSECabc", hashlib.sha256).digest()
    assert ding == base64.b64encode(raw).decode()
    fei = feishu_sign("abc", 1700000000)
    raw = hmac.new(b"1700000000\nabc", b"", hashlib.sha256).digest()
    assert fei == base64.b64encode(raw).decode()


# ---- each channel against the fake -----------------------------------------------------------


@pytest.mark.parametrize("product", PRODUCTS)
async def test_happy_path(fake: v.VendorFake, product: str) -> None:
    channel = build(product, fake)
    try:
        delivery = await channel.send(note(product))
    finally:
        await channel.close()
    assert delivery.ok, delivery.detail
    [got] = fake.received(product)
    assert expected_text(product)(got.text), got.text
    if product in ("sms_aliyun", "voice_aliyun", "sms_tencent", "voice_tencent"):
        assert got.out_id == "7/0/grid_worker/0/" + product  # our key rides along (OutId …)
        assert got.phone.endswith("13900002001")
        assert delivery.ref == got.ref  # the vendor's id, for receipts
        assert channel.once_only
    else:
        assert "李网格" in got.text
        assert not channel.once_only


@pytest.mark.parametrize("product", PRODUCTS)
async def test_wrong_credentials_are_refused_and_say_so(fake: v.VendorFake, product: str) -> None:
    channel = build(product, fake, wrong=True)
    try:
        delivery = await channel.send(note(product))
    finally:
        await channel.close()
    assert not delivery.ok and not delivery.retry and not delivery.unknown
    assert "refused, check settings" in delivery.detail
    code = {
        "sms_aliyun": "SignatureDoesNotMatch",
        "voice_aliyun": "SignatureDoesNotMatch",
        "sms_tencent": "AuthFailure.SignatureFailure",
        "voice_tencent": "AuthFailure.SignatureFailure",
        "wecom": "93000",
        "dingtalk": "310000",
        "feishu": "19021",
    }[product]
    assert code in delivery.detail
    assert fake.received(product) == []


@pytest.mark.parametrize("off_s", [-3660.0, 3660.0])
@pytest.mark.parametrize(("product", "code"), [("dingtalk", "310000"), ("feishu", "19021")])
async def test_a_signed_robot_with_its_clock_an_hour_off_is_refused(
    fake: v.VendorFake, product: str, code: str, off_s: float
) -> None:
    """The right secret, but a time stamp more than an hour off: the vendor refuses the
    signature (a cloud whose clock drifted), and the robot says to check the settings."""
    robot, secret = (
        (DingTalkRobot, v.DINGTALK_SECRET)
        if product == "dingtalk"
        else (FeishuBot, v.FEISHU_SECRET)
    )
    channel = robot(
        fake.url(product), secret=secret, timeout_s=5, wall_clock=lambda: time.time() + off_s
    )
    try:
        delivery = await channel.send(note(product))
    finally:
        await channel.close()
    assert not delivery.ok and not delivery.retry, delivery.detail
    assert code in delivery.detail and "refused, check settings" in delivery.detail
    assert fake.received(product) == []


@pytest.mark.parametrize("product", PRODUCTS)
async def test_the_vendors_rate_limit_is_a_retry_later(fake: v.VendorFake, product: str) -> None:
    limit, _ = fake.limits[product]
    # robots: our own window set above the vendor's, so the vendor's limit is what is met
    channel = build(product, fake, per_minute=1000)
    try:
        first = [await channel.send(note(product, key=f"k{i}")) for i in range(limit)]
        over = await channel.send(note(product, key="over"))
    finally:
        await channel.close()
    assert all(d.ok for d in first)
    assert not over.ok and over.retry and not over.unknown
    assert over.retry_after_s is not None and over.retry_after_s >= 30
    assert "rate limited" in over.detail
    assert len(fake.received(product)) == limit


@pytest.mark.parametrize("product", ["wecom", "dingtalk", "feishu"])
async def test_a_robot_holds_back_the_21st_message_itself(fake: v.VendorFake, product: str) -> None:
    channel = build(product, fake)
    try:
        sent = [await channel.send(note(product, key=f"k{i}")) for i in range(21)]
    finally:
        await channel.close()
    assert all(d.ok for d in sent[:20])
    held = sent[20]
    assert not held.ok and held.retry and held.retry_after_s is not None
    assert "20 messages per 60 s reached; not sent" in held.detail
    assert len(fake.received(product)) == 20
    assert fake.refusals == []  # the vendor never had to throttle the robot


@pytest.mark.parametrize("product", PRODUCTS)
async def test_a_vendor_error_is_worth_a_retry(fake: v.VendorFake, product: str) -> None:
    fake.fail_next(product, "error")
    channel = build(product, fake)
    try:
        failed = await channel.send(note(product))
        again = await channel.send(note(product, attempt=1))
    finally:
        await channel.close()
    assert not failed.ok and failed.retry and not failed.unknown
    assert again.ok
    assert len(fake.received(product)) == 1


@pytest.mark.parametrize("product", PRODUCTS)
async def test_a_vendor_that_is_down_is_worth_a_retry(fake: v.VendorFake, product: str) -> None:
    fake.fail_next(product, "down")
    channel = build(product, fake)
    try:
        failed = await channel.send(note(product))
    finally:
        await channel.close()
    assert not failed.ok and failed.retry and "503" in failed.detail
    assert fake.received(product) == []


@pytest.mark.parametrize("product", PRODUCTS)
async def test_a_lost_answer_is_an_unknown_outcome(fake: v.VendorFake, product: str) -> None:
    fake.fail_next(product, "hang")
    channel = build(product, fake, timeout_s=1.0)
    try:
        delivery = await channel.send(note(product))
    finally:
        await channel.close()
    assert not delivery.ok and delivery.unknown and delivery.retry
    assert "whether it arrived is unknown" in delivery.detail
    assert len(await fake.await_for(product, 1)) == 1  # it did go out


async def test_nobody_listening_is_not_sent(fake: v.VendorFake) -> None:
    port = fake.port
    fake.stop()
    channel = build("sms_aliyun", v.VendorFake(port=port))
    try:
        delivery = await channel.send(note("sms_aliyun"))
    finally:
        await channel.close()
    assert not delivery.ok and delivery.retry and not delivery.unknown
    assert "not sent" in delivery.detail


@pytest.mark.parametrize("product", ["sms_aliyun", "voice_tencent"])
async def test_no_phone_number_is_a_clear_refusal(fake: v.VendorFake, product: str) -> None:
    channel = build(product, fake)
    try:
        delivery = await channel.send(note(product, phone=None))
    finally:
        await channel.close()
    assert not delivery.ok and not delivery.retry and "no phone number" in delivery.detail
