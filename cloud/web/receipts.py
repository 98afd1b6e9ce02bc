"""The voice vendors' receipts (call answered or not): POST /api/receipts/{vendor}/{token}.
No session: the vendor calls it; the secret `token` in the path (SC_CLOUD_RECEIPT_TOKEN) is the
credential, and a wrong one looks like a missing page. The receipt's shape is checked
(cloud/notify/receipts.py); the answer is the one the vendor expects."""

from __future__ import annotations

import hmac
import json

from fastapi import APIRouter, HTTPException, Request, status

from cloud.errors import Refused
from cloud.notify.receipts import VENDORS
from cloud.web.deps import CallResultsDep, SettingsDep

router = APIRouter()

MAX_BYTES = 256 * 1024


@router.post(
    "/api/receipts/{vendor}/{token}",
    summary="A voice vendor's call receipt (aliyun-voice, tencent-voice); token-guarded",
    responses={404: {"description": "No such vendor, or the wrong token"}},
)
async def receipt(
    vendor: str, token: str, request: Request, settings: SettingsDep, results: CallResultsDep
) -> dict[str, object]:
    expected = settings.receipt_token
    known = VENDORS.get(vendor)
    if (
        expected is None
        or known is None
        or not hmac.compare_digest(token.encode(), expected.get_secret_value().encode())
    ):
        raise HTTPException(status.HTTP_404_NOT_FOUND)
    raw = await request.body()
    if len(raw) > MAX_BYTES:
        raise Refused(f"回执过大 / receipt too large: {len(raw)} bytes")
    try:
        body = json.loads(raw)
    except ValueError:
        raise Refused("回执不是 JSON / the receipt is not JSON") from None
    await results.record(known.parse(body))
    return known.ack
