"""The grid worker's cases (网格员工单), for their phone page.

A grid worker signs in with an account of role `grid_worker`; the roster's person with that
account (`roster_people.account`) is who they are. Their cases: the open live cases of the
grids they cover on the shift in force that the duty room dispatched, and the daily check-in's
visit tasks of those grids (sent to the grid worker directly) — and, after their shift ends,
whatever they took and has not been closed. On each they can:

- accept (接单): kept (`field_tasks`) and in the case's log; a visit task nobody accepted yet
  is accepted by them (the duty room did not have to);
- navigate to the home: the page links the building's address to a map app;
- give feedback (情况反馈) with a photo (JPEG, PNG or WebP, at most `MAX_PHOTO` bytes, kept in
  `field_photos`; the log line names it);
- resolve (办结) as handled.

Anything else (another grid's case, a closed one) is "not one of your cases" (404), so a grid
worker learns nothing about cases that are not theirs.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from cloud.alarms.actions import CaseActions
from cloud.alarms.model import OPEN_STATES, Alarm, AlarmState, Mode, Outcome
from cloud.alarms.rows import log
from cloud.db.database import Conn, Database
from cloud.duty.roster import Roster
from cloud.errors import NotFound, Refused, TooLarge
from cloud.rules.supervision_rules import CHECKIN_MISSED
from cloud.site.registry import Registry
from cloud.times import from_epoch

MAX_PHOTO = 4 * 1024 * 1024
#: the image kinds a phone's camera gives, by their first bytes
_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"))


class GridCase(BaseModel):
    id: int
    level: int
    title_zh: str
    title_en: str
    state: AlarmState
    building: str
    home: str
    address: str
    residents: list[str]
    received_at: datetime
    dispatched_to: str | None
    taken_at: datetime | None  # when this worker accepted it on the page
    feedback_at: datetime | None
    photos: int


def photo_kind(data: bytes) -> str | None:
    """The photo's MIME type from its first bytes, or None if it is no image we take."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


class GridCases:
    def __init__(
        self, db: Database, roster: Roster, registry: Registry, cases: CaseActions
    ) -> None:
        self.db = db
        self.roster = roster
        self.registry = registry
        self.cases = cases

    async def of(self, account: str) -> list[GridCase]:
        now = self.db.clock()

        def read(conn: Conn) -> list[tuple[Alarm, float | None, int]]:
            grids = self.roster.grids_of(conn, account, now)
            taken = {
                r["alarm_id"]: r["accepted_at"]
                for r in conn.execute(
                    "SELECT alarm_id, accepted_at FROM field_tasks WHERE account = ?", (account,)
                ).fetchall()
            }
            grid_ids = grids or [""]  # no grid now: a condition no alarm meets
            marks = ", ".join("?" * len(grid_ids))
            rows = conn.execute(
                f"SELECT a.* FROM alarms a WHERE a.state IN ({OPEN_STATES}) AND a.mode = ?"
                f" AND ((a.grid_id IN ({marks}) AND (a.dispatched_at IS NOT NULL OR a.rule = ?))"
                " OR a.id IN (SELECT alarm_id FROM field_tasks WHERE account = ?))"
                " ORDER BY a.level, a.received_at, a.id",
                (Mode.LIVE.value, *grid_ids, CHECKIN_MISSED, account),
            ).fetchall()
            alarms = [Alarm.from_row(r) for r in rows]
            photos: dict[int, int] = {}
            if alarms:
                ids = [a.id for a in alarms]
                marks = ", ".join("?" * len(ids))
                photos = {
                    r["alarm_id"]: r["n"]
                    for r in conn.execute(
                        "SELECT alarm_id, count(*) AS n FROM field_photos"
                        f" WHERE alarm_id IN ({marks}) GROUP BY alarm_id",
                        ids,
                    ).fetchall()
                }
            return [(a, taken.get(a.id), photos.get(a.id, 0)) for a in alarms]

        return [self._case(a, taken, n) for a, taken, n in await self.db.read(read)]

    def _case(self, alarm: Alarm, taken: float | None, photos: int) -> GridCase:
        address = next(
            (
                building.address or building.name
                for community in self.registry.site.communities
                for grid in community.grids
                for building in grid.buildings
                if building.id == alarm.building_id
            ),
            alarm.building,
        )
        home = self.registry.home(alarm.home_id) if alarm.home_id else None
        residents = [r.name for r in home.residents] if home is not None else []
        return GridCase(
            id=alarm.id,
            level=alarm.level,
            title_zh=alarm.title_zh,
            title_en=alarm.title_en,
            state=alarm.state,
            building=alarm.building,
            home=alarm.home,
            address=address,
            residents=residents,
            received_at=alarm.received_at,
            dispatched_to=alarm.dispatched_to,
            taken_at=from_epoch(taken),
            feedback_at=alarm.feedback_at,
            photos=photos,
        )

    async def _mine(self, alarm_id: int, account: str) -> GridCase:
        for case in await self.of(account):
            if case.id == alarm_id:
                return case
        raise NotFound.said(f"工单 {alarm_id} 不是派给你的", f"case {alarm_id} is not one of yours")

    async def accept(self, alarm_id: int, account: str) -> GridCase:
        case = await self._mine(alarm_id, account)
        if case.state is AlarmState.ACTIVE:  # a visit task: the grid worker takes it
            await self.cases.accept(alarm_id, account)
        now = self.db.clock()

        def take(conn: Conn) -> None:
            conn.execute(
                "INSERT INTO field_tasks (alarm_id, account, accepted_at) VALUES (?,?,?)"
                " ON CONFLICT (alarm_id, account) DO NOTHING",
                (alarm_id, account, now),
            )
            log(
                conn,
                alarm_id,
                account,
                "field_accepted",
                "on the grid worker's page",
                now,
            )

        if case.taken_at is None:
            await self.db.write(take)
        return await self._mine(alarm_id, account)

    async def feedback(
        self, alarm_id: int, account: str, note: str, photo: bytes | None
    ) -> GridCase:
        case = await self._mine(alarm_id, account)
        if case.taken_at is None:
            raise Refused.said("请先接单，再反馈", "accept the case before giving feedback")
        mime = None
        if photo is not None:
            if len(photo) > MAX_PHOTO:
                raise TooLarge.said(
                    f"照片太大（{len(photo) // 1024} KB），最大 {MAX_PHOTO // 1024 // 1024} MB",
                    f"the photo is {len(photo) // 1024} KB; at most {MAX_PHOTO // 1024 // 1024} MB",
                )
            mime = photo_kind(photo)
            if mime is None:
                raise Refused.said(
                    "照片格式不支持（请用 JPEG、PNG 或 WebP）",
                    "not a photo we take (JPEG, PNG or WebP)",
                )
        if not note.strip() and photo is None:
            raise Refused.said("请填写反馈或附上照片", "give a note or a photo")
        now = self.db.clock()
        photo_id = None
        if photo is not None and mime is not None:
            kind = mime

            def keep(conn: Conn) -> int:
                row = conn.execute(
                    "INSERT INTO field_photos (alarm_id, account, at, mime, data)"
                    " VALUES (?,?,?,?,?) RETURNING id",
                    (alarm_id, account, now, kind, photo),
                ).fetchone()
                return int(row["id"])

            photo_id = await self.db.write(keep)
        text = note.strip() + (f" [photo {photo_id}]" if photo_id else "")
        await self.cases.feedback(alarm_id, account, text)
        return await self._mine(alarm_id, account)

    async def resolve(self, alarm_id: int, account: str, note: str) -> Alarm:
        case = await self._mine(alarm_id, account)
        if case.taken_at is None:
            raise Refused.said("请先接单，再办结", "accept the case before resolving it")
        return await self.cases.resolve(alarm_id, account, Outcome.HANDLED, note, None)

    async def photo(self, photo_id: int) -> tuple[str, bytes, str]:
        """A photo: its type, its bytes and the account that sent it."""
        row = await self.db.fetch_one(
            "SELECT mime, data, account FROM field_photos WHERE id = ?", (photo_id,)
        )
        if row is None:
            raise NotFound.said(f"没有照片 {photo_id}", f"no photo {photo_id}")
        return str(row["mime"]), bytes(row["data"]), str(row["account"])
