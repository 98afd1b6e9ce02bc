"""The resident at a glance on the board's row (issue 15, point 8): name, age and flags for the
duty roles, one audited read; never a phone, a contact or the conditions' text (those stay in
the case, audited per alarm). The flags and the resident's phone are validated where residents
are written."""

from __future__ import annotations

import httpx
import pytest

from tests.cloud.conftest import RunningCloud, signed_in

# about who may read what, not the database (tests/db_backends.py)
pytestmark = pytest.mark.parametrize("db_backend", ["sqlite"])


async def glance_reads(client: httpx.AsyncClient) -> list[dict[str, str]]:
    resp = await client.get("/api/audit", params={"action": "resident_glance_read"})
    resp.raise_for_status()
    reads: list[dict[str, str]] = resp.json()
    return reads


async def test_duty_roles_see_who_lives_where_without_phones_and_the_read_is_audited(
    cloud: RunningCloud, operator: httpx.AsyncClient
) -> None:
    resp = await operator.get("/api/site/residents/glance")
    assert resp.status_code == 200
    homes = resp.json()["homes"]
    assert homes == {
        "h-01-0101": [{"name": "王秀英", "age": 82, "flags": ["lives_alone", "mobility"]}],
        "h-02-0101": [{"name": "陈德明", "age": 77, "flags": ["hearing"]}],
    }
    for private in ("8600 0101", "139 0000", "王建国", "高血压", "起搏器"):
        assert private not in resp.text

    admin = await signed_in(cloud.url, "adm")
    try:
        [read] = await glance_reads(admin)
        assert (read["actor"], read["detail"]) == ("op", "2 homes")
    finally:
        await admin.aclose()


async def test_an_installer_gets_no_residents_at_a_glance(cloud: RunningCloud) -> None:
    installer = await signed_in(cloud.url, "inst")
    admin = await signed_in(cloud.url, "adm")
    try:
        refused = await installer.get("/api/site/residents/glance")
        assert refused.status_code == 403
        assert "王秀英" not in refused.text
        assert await glance_reads(admin) == []
    finally:
        await installer.aclose()
        await admin.aclose()


async def test_a_residents_phone_and_flags_are_kept_and_bad_ones_refused(
    cloud: RunningCloud, operator: httpx.AsyncClient
) -> None:
    supervisor = await signed_in(cloud.url, "sup")
    url = "/api/site/homes/h-01-0102/residents"
    try:
        for bad, field in (
            ({"name": "刘芳", "flags": ["lives_alone", "lives_alone"]}, "flag is given twice"),
            ({"name": "刘芳", "flags": ["grumpy"]}, "flags"),
            ({"name": "刘芳", "phone": "call me"}, "phone"),
        ):
            refused = await supervisor.put(url, json={"residents": [bad]})
            assert refused.status_code == 422, bad
            assert field in refused.text, refused.text
        assert "h-01-0102" not in (await operator.get("/api/site/residents/glance")).json()["homes"]

        ok = await supervisor.put(
            url,
            json={
                "residents": [
                    {"name": "刘芳", "age": 90, "phone": "028 8600 0102", "flags": ["oxygen"]}
                ]
            },
        )
        assert ok.status_code == 200, ok.text
        homes = (await operator.get("/api/site/residents/glance")).json()["homes"]
        assert homes["h-01-0102"] == [{"name": "刘芳", "age": 90, "flags": ["oxygen"]}]
        [kept] = (await operator.get(url)).json()["residents"]
        assert kept["phone"] == "028 8600 0102"
    finally:
        await supervisor.aclose()
