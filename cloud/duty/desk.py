"""The duty desk: the roster, handovers and check-ins, built together from the cloud's parts
(one field of the cloud and of the web app's services)."""

from __future__ import annotations

from dataclasses import dataclass

from cloud.access.audit import Audit
from cloud.alarms.book import AlarmBook
from cloud.alarms.queries import AlarmQueries
from cloud.db.database import Database
from cloud.devices.health import HealthReports
from cloud.duty.checkin import CheckIns
from cloud.duty.handover import Handovers
from cloud.duty.roster import Roster
from cloud.notify.announce import Announcer
from cloud.site.registry import Registry


@dataclass(frozen=True, slots=True)
class DutyDesk:
    roster: Roster
    handovers: Handovers
    checkins: CheckIns

    @classmethod
    def build(
        cls,
        *,
        db: Database,
        registry: Registry,
        book: AlarmBook,
        health: HealthReports,
        audit: Audit,
        announcer: Announcer,
    ) -> DutyDesk:
        roster = Roster(db, registry, audit)
        return cls(
            roster=roster,
            handovers=Handovers(db, AlarmQueries(db), health, roster, audit),
            checkins=CheckIns(db, registry, book, audit, announce=announcer.announce),
        )
