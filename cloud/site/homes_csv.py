"""Homes from the street office's spreadsheet (CSV), validated row by row, all or nothing.

The header row names the columns, in Chinese or English (any order; see `COLUMNS`). Every
row is one home. Communities and grids must exist already (they are created in the web app,
a grid with its grid worker); a building that does not exist yet is created from the row (its
name is then required). The file is UTF-8 (with or without the BOM Excel writes) or GBK
(what Chinese Excel saves as "CSV"); UTF-16 with a BOM (Excel's "Unicode text") too.

Every problem is reported with the row number as the spreadsheet shows it (the header is row
1), the column and the reason, in Chinese and English; if there is any, nothing is applied.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from cloud.errors import Refused
from cloud.site.tree import Change, SiteEditError, validated
from contract.site import Site

MAX_ROWS = 5000

#: canonical column → (Chinese header shown in messages, accepted spellings, required)
COLUMNS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "community": ("社区", ("社区", "社区名称", "community"), True),
    "grid": ("网格", ("网格", "网格名称", "grid"), True),
    "building_id": ("楼栋编号", ("楼栋编号", "building_id", "buildingid"), True),
    "building": ("楼栋名称", ("楼栋名称", "楼栋", "building", "building_name"), False),
    "address": ("地址", ("地址", "楼栋地址", "address"), False),
    "home_id": ("房屋编号", ("房屋编号", "住户编号", "home_id", "homeid"), True),
    "home": (
        "门牌",
        ("门牌", "单元/门牌", "单元门牌", "房号", "门牌号", "home", "home_name"),
        True,
    ),
    "note": ("备注", ("备注", "note", "notes"), False),  # read and ignored
}
_ALIASES = {
    alias.lower().replace(" ", ""): key
    for key, (_, aliases, _) in COLUMNS.items()
    for alias in aliases
}
_SLUG_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


class RowError(BaseModel):
    """One problem: the spreadsheet row (1 = the header, 0 = the file as a whole)."""

    row: int
    column: str = ""
    zh: str
    en: str


class HomePlanned(BaseModel):
    row: int
    community: str
    grid: str
    building: str
    id: str
    name: str


class ImportPlan(BaseModel):
    """What the file adds."""

    buildings: list[str] = []  # new building ids
    homes: list[HomePlanned] = []


class CsvRejected(Refused):
    """The file as a whole is refused; `errors` names every problem by row."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        super().__init__(f"{len(errors)} problem(s) in the file")


@dataclass
class _Errors:
    items: list[RowError] = field(default_factory=list)

    def add(self, row: int, column: str, zh: str, en: str) -> None:
        self.items.append(
            RowError(row=row, column=column, zh=f"第 {row} 行：{zh}", en=f"row {row}: {en}")
        )


def decode(raw: bytes) -> str:
    """UTF-8 (BOM or not), UTF-16 with a BOM, else GBK (as GB18030, its superset)."""
    try:
        if raw.startswith(b"\xef\xbb\xbf"):
            return raw[3:].decode("utf-8")
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            return raw.decode("utf-16")
    except UnicodeDecodeError:
        raise _unreadable() from None  # a byte-order mark, then something else
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gb18030")
    except UnicodeDecodeError:
        raise _unreadable() from None


def _unreadable() -> CsvRejected:
    return CsvRejected(
        [
            RowError(
                row=0,
                zh="无法识别文件编码：请另存为 UTF-8 或 GBK 编码的 CSV",
                en="cannot read the file's encoding: save it as CSV in UTF-8 or GBK",
            )
        ]
    )


def _slug(value: str) -> str:
    return value.strip().lower()


def _is_slug(value: str) -> bool:
    return 0 < len(value) <= 63 and value[0] not in "_-" and all(ch in _SLUG_CHARS for ch in value)


def _read(text: str, errors: _Errors) -> list[tuple[int, dict[str, str]]]:
    try:
        return _rows(text, errors)
    except csv.Error as exc:  # e.g. a NUL byte, an unclosed quote at the end, a huge field
        errors.items.append(
            RowError(
                row=0,
                zh=f"不是有效的 CSV 文件：{exc}",
                en=f"not a valid CSV file: {exc}",
            )
        )
        return []


def _rows(text: str, errors: _Errors) -> list[tuple[int, dict[str, str]]]:
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    dialect = "excel-tab" if "\t" in first and "," not in first else "excel"
    reader = csv.reader(io.StringIO(text), dialect=dialect)
    header: list[str] | None = None
    columns: list[str | None] = []
    rows: list[tuple[int, dict[str, str]]] = []
    header_row = 0
    for cells in reader:
        number = reader.line_num
        if header is None:
            if not any(c.strip() for c in cells):
                continue
            header = cells
            seen: dict[str, str] = {}
            for cell in cells:
                name = cell.strip()
                key = _ALIASES.get(name.lower().replace(" ", ""))
                if key is None:
                    if name:
                        known = "、".join(zh for zh, _, _ in COLUMNS.values())
                        errors.add(
                            number,
                            name,
                            f"未知的列“{name}”（可用的列：{known}）",
                            f"unknown column {name!r} (columns: {', '.join(COLUMNS)})",
                        )
                    columns.append(None)
                    continue
                if key in seen:
                    errors.add(
                        number,
                        name,
                        f"列“{name}”与“{seen[key]}”重复",
                        f"column {name!r} repeats {seen[key]!r}",
                    )
                seen[key] = name
                columns.append(key)
            for key, (zh, _, required) in COLUMNS.items():
                if required and key not in seen:
                    errors.add(number, zh, f"缺少列“{zh}”", f"missing column {key} ({zh})")
            header_row = number
            continue
        if not any(c.strip() for c in cells):
            continue  # blank lines are skipped
        if len(cells) > len(columns) and any(c.strip() for c in cells[len(columns) :]):
            errors.add(
                number,
                "",
                f"本行有 {len(cells)} 个单元格，表头只有 {len(columns)} 列",
                f"{len(cells)} cells, but the header has {len(columns)} columns",
            )
            continue
        values = {
            key: cell.strip() for key, cell in zip(columns, cells, strict=False) if key is not None
        }
        rows.append((number, values))
    if header is None:
        errors.items.append(
            RowError(row=0, zh="文件是空的：没有表头", en="the file is empty: no header row")
        )
    elif not rows and not errors.items:
        errors.add(header_row, "", "表头之后没有数据", "no rows after the header")
    if len(rows) > MAX_ROWS:
        errors.items.append(
            RowError(
                row=0,
                zh=f"行数过多（{len(rows)} 行，最多 {MAX_ROWS} 行）：请分批导入",
                en=f"too many rows ({len(rows)}, at most {MAX_ROWS}): import in parts",
            )
        )
    return rows


def _need(values: dict[str, str], key: str, row: int, errors: _Errors) -> str:
    zh = COLUMNS[key][0]
    value = values.get(key, "")
    if not value:
        errors.add(row, zh, f"“{zh}”为空", f"{key} ({zh}) is empty")
    return value


def plan_import(site: Site, raw: bytes) -> tuple[Change, ImportPlan]:
    """The new site with every row's home added, and what that adds; raises CsvRejected
    listing every problem (nothing is applied then)."""
    errors = _Errors()
    rows = _read(decode(raw), errors)
    if errors.items:
        raise CsvRejected(errors.items)
    tree: dict[str, Any] = site.model_dump(mode="python")

    ids: dict[str, str] = {}  # every id in the site → what it is
    home_names: dict[tuple[str, str], str] = {}  # (building, home name) → home id
    buildings: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}  # id → (grid, building)
    for community in tree["communities"]:
        ids[community["id"]] = f"community {community['id']}"
        for grid in community["grids"]:
            ids[grid["id"]] = f"grid {grid['id']}"
            for building in grid["buildings"]:
                ids[building["id"]] = f"building {building['id']}"
                buildings[building["id"]] = (grid, building)
                for home in building["homes"]:
                    ids[home["id"]] = f"home {home['id']} in building {building['id']}"
                    home_names[(building["id"], home["name"])] = home["id"]
    for gateway in tree["gateways"]:
        ids[gateway["id"]] = f"gateway {gateway['id']}"

    plan = ImportPlan()
    in_file: dict[str, int] = {}  # home id → row
    names_in_file: dict[tuple[str, str], int] = {}  # (building, home name) → row

    def find_community(value: str) -> dict[str, Any] | None:
        for community in tree["communities"]:
            if value in (community["id"], community["name"]):
                return community
        return None

    for number, values in rows:
        community_ref, grid_ref = (
            _need(values, "community", number, errors),
            _need(values, "grid", number, errors),
        )
        building_id = _slug(_need(values, "building_id", number, errors))
        home_id = _slug(_need(values, "home_id", number, errors))
        home_name = _need(values, "home", number, errors)
        building_name, address = values.get("building", ""), values.get("address", "")
        if not (community_ref and grid_ref and building_id and home_id and home_name):
            continue
        bad = False
        for key, value in (("building_id", building_id), ("home_id", home_id)):
            if not _is_slug(value):
                zh = COLUMNS[key][0]
                errors.add(
                    number,
                    zh,
                    f"{zh} “{value}” 只能由小写字母、数字、- 和 _ 组成（最长 63 个字符）",
                    f"{key} {value!r} may only have lower-case letters, digits, - and _ "
                    "(at most 63)",
                )
                bad = True
        for key, value in (("building", building_name), ("home", home_name)):
            if len(value) > 100:
                zh = COLUMNS[key][0]
                errors.add(number, zh, f"{zh}超过 100 个字符", f"{key} is over 100 characters")
                bad = True
        if len(address) > 200:
            errors.add(number, "地址", "地址超过 200 个字符", "address is over 200 characters")
            bad = True
        community = find_community(community_ref)
        if community is None:
            errors.add(
                number,
                "社区",
                f"社区“{community_ref}”不存在",
                f"unknown community {community_ref}",
            )
            continue
        grid = next((g for g in community["grids"] if grid_ref in (g["id"], g["name"])), None)
        if grid is None:
            errors.add(
                number,
                "网格",
                f"网格“{grid_ref}”不存在（社区 {community['name']}）",
                f"unknown grid {grid_ref} (community {community['id']})",
            )
            continue
        if bad:
            continue
        # the building: an existing one in this grid, or a new one made from this row
        if building_id in buildings:
            owner, building = buildings[building_id]
            if owner["id"] != grid["id"]:
                errors.add(
                    number,
                    "楼栋编号",
                    f"楼栋 {building_id} 属于网格 {owner['name']}（{owner['id']}），"
                    f"不是 {grid['name']}",
                    f"building {building_id} is in grid {owner['id']}, not {grid['id']}",
                )
                continue
            if building_name and building_name != building["name"]:
                errors.add(
                    number,
                    "楼栋名称",
                    f"楼栋 {building_id} 的名称是“{building['name']}”，本行写的是“{building_name}”",
                    f"building {building_id} is named {building['name']!r}, this row says "
                    f"{building_name!r}",
                )
                continue
        else:
            if building_id in ids:
                errors.add(
                    number,
                    "楼栋编号",
                    f"编号 {building_id} 已被使用（{ids[building_id]}）",
                    f"building id {building_id} is already used by {ids[building_id]}",
                )
                continue
            if not building_name:
                errors.add(
                    number,
                    "楼栋名称",
                    f"楼栋 {building_id} 是新楼栋，需要填写楼栋名称",
                    f"building {building_id} is new: its name is required",
                )
                continue
            building = {"id": building_id, "name": building_name, "address": address, "homes": []}
            grid["buildings"].append(building)
            buildings[building_id] = (grid, building)
            ids[building_id] = f"building {building_id}"
            plan.buildings.append(building_id)
        # the home
        if home_id in in_file:
            errors.add(
                number,
                "房屋编号",
                f"房屋 {home_id} 与第 {in_file[home_id]} 行重复",
                f"duplicate home {home_id} in building {building_id} (also row {in_file[home_id]})",
            )
            continue
        if home_id in ids:
            errors.add(
                number,
                "房屋编号",
                f"房屋编号 {home_id} 已被使用（{ids[home_id]}）",
                f"duplicate home {home_id}: already in the registry ({ids[home_id]})",
            )
            continue
        if (building_id, home_name) in names_in_file:
            errors.add(
                number,
                "门牌",
                f"楼栋 {building_id} 中门牌“{home_name}”与第 "
                f"{names_in_file[(building_id, home_name)]} 行重复",
                f"home name {home_name!r} appears twice in building {building_id} (also row "
                f"{names_in_file[(building_id, home_name)]})",
            )
            continue
        if (building_id, home_name) in home_names:
            other = home_names[(building_id, home_name)]
            errors.add(
                number,
                "门牌",
                f"楼栋 {building_id} 中已有门牌“{home_name}”（房屋 {other}）",
                f"building {building_id} already has a home named {home_name!r} ({other})",
            )
            continue
        in_file[home_id] = number
        names_in_file[(building_id, home_name)] = number
        building["homes"].append({"id": home_id, "name": home_name, "residents": []})
        plan.homes.append(
            HomePlanned(
                row=number,
                community=community["id"],
                grid=grid["id"],
                building=building_id,
                id=home_id,
                name=home_name,
            )
        )
    if errors.items:
        raise CsvRejected(errors.items)
    try:
        new = validated(tree)
    except SiteEditError as exc:  # something the row checks above did not foresee
        raise CsvRejected([RowError(row=0, zh=exc.zh, en=exc.en)]) from None
    reason = f"CSV import: {len(plan.homes)} home(s)" + (
        f", {len(plan.buildings)} new building(s) {plan.buildings}" if plan.buildings else ""
    )
    return Change(new, "site_csv_imported", reason), plan
