"""Which cases the ledger shows, exports or sums up: the filter an operator sets, as query
parameters, checked (a date range that ends before it starts, a level that is not I-IV, a
date that is not one are refused with the reason) and turned into SQL.

Times in the database are UTC epoch seconds; what an operator types is Beijing time
(Asia/Shanghai, no daylight saving), so a date filter means a local day.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from cloud.alarms.model import AlarmState, Mode, Outcome
from contract.models import Kind

try:
    BEIJING: timezone | ZoneInfo = ZoneInfo("Asia/Shanghai")
except ZoneInfoNotFoundError:  # no tz database: China has had no daylight saving since 1991
    BEIJING = timezone(timedelta(hours=8), "CST")

_HALF_US = 0.5e-6
_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4}


def _level(value: Any) -> Any:
    """1-4, or the level's name (I, II, III, IV; also Ⅰ…Ⅳ)."""
    if isinstance(value, str):
        text = value.strip().upper().replace("Ⅰ", "I").replace("Ⅱ", "II")
        text = text.replace("Ⅲ", "III").replace("Ⅳ", "IV")
        if text in _ROMAN:
            return _ROMAN[text]
    return value


def _moment(value: Any, *, end_of_day: bool) -> Any:
    """An ISO date (a whole local day) or datetime (naive: Beijing time) → an aware datetime."""
    if value is None:
        return value
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=BEIJING)
    if not isinstance(value, str):
        raise ValueError("expected an ISO date (2027-01-15) or datetime (2027-01-15T08:30)")
    text = value.strip()
    if len(text) == 10:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a date like 2027-01-15") from None
        _in_range(day.year, text)
        if end_of_day:
            day += timedelta(days=1)
        return datetime.combine(day, time(0), BEIJING)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a date (2027-01-15) nor a datetime (2027-01-15T08:30)"
        ) from None
    _in_range(moment.year, text)
    return moment if moment.tzinfo else moment.replace(tzinfo=BEIJING)


def _in_range(year: int, text: str) -> None:
    if not 1970 <= year <= 2999:
        raise ValueError(f"{text!r} is out of range: the years 1970-2999")


Level = Annotated[int, BeforeValidator(_level), Field(ge=1, le=4)]
CommunityId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
From = Annotated[datetime | None, BeforeValidator(lambda v: _moment(v, end_of_day=False))]
To = Annotated[datetime | None, BeforeValidator(lambda v: _moment(v, end_of_day=True))]


class LedgerFilter(BaseModel):
    """Which cases: all of them unless narrowed. Repeat a parameter for several values
    (`level=1&level=2`)."""

    model_config = ConfigDict(extra="forbid")

    date_from: From = Field(
        None,
        description="Received at or after: a date (the start of that day in Beijing time) or an"
        " ISO datetime (without an offset: Beijing time)",
    )
    date_to: To = Field(
        None,
        description="Received before: a date means up to the END of that day (Beijing time),"
        " a datetime is exclusive (without an offset: Beijing time)",
    )
    community: list[CommunityId] = Field([], max_length=50, description="Community ids")
    kind: list[Kind] = Field([], max_length=20)
    level: list[Level] = Field([], max_length=4, description="1-4 or I, II, III, IV")
    outcome: list[Outcome] = Field([], max_length=10)
    state: list[AlarmState] = Field([], max_length=10)
    include_tests: bool = Field(
        False, description="Also alarms recorded during walk tests and maintenance windows"
    )
    verified: bool | None = Field(
        None, description="true: only cases a supervisor verified (督办核实); false: the others"
    )

    @model_validator(mode="after")
    def _range(self) -> LedgerFilter:
        if self.date_from and self.date_to and self.date_from >= self.date_to:
            raise ValueError(
                f"date_from ({self.date_from.isoformat()}) is not before date_to"
                f" ({self.date_to.isoformat()}, exclusive)"
            )
        return self

    def where(self) -> tuple[str, list[object]]:
        clauses: list[str] = []
        args: list[object] = []
        if not self.include_tests:
            clauses.append("mode = ?")
            args.append(Mode.LIVE.value)
        # Times are stored as float seconds and shown to the microsecond (rounded): a bound
        # equal to a case's time as shown counts as that case's time.
        if self.date_from is not None:
            clauses.append("received_at >= ?")
            args.append(self.date_from.timestamp() - _HALF_US)
        if self.date_to is not None:
            clauses.append("received_at < ?")
            args.append(self.date_to.timestamp() - _HALF_US)
        columns: Iterable[tuple[str, Sequence[object]]] = (
            ("community_id", self.community),
            ("kind", [k.value for k in self.kind]),
            ("level", self.level),
            ("outcome", [o.value for o in self.outcome]),
            ("state", [s.value for s in self.state]),
        )
        for column, given in columns:
            values = list(dict.fromkeys(given))  # a value given twice counts once
            if values:
                clauses.append(f"{column} IN ({','.join('?' * len(values))})")
                args.extend(values)
        if self.verified is not None:
            clauses.append(f"verified_at IS {'NOT ' if self.verified else ''}NULL")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    def describe(self) -> dict[str, Any]:
        """The filter as given (for the audit and the export's summary)."""
        return self.model_dump(mode="json", exclude_defaults=True)


class LedgerQuery(LedgerFilter):
    page: int = Field(1, ge=1, le=1_000_000)
    page_size: int = Field(50, ge=1, le=500)


class ExportQuery(LedgerFilter):
    lang: Literal["zh", "en"] = Field("zh", description="Column headers and words")
