"""A site being edited: a plain dict copy of the document (`Tree`), finding things in it by
id, and validating it back into a `Site`; what an edit makes (`Change`) or why it cannot be
made (`SiteEditError`, in Chinese and English, naming the thing).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from cloud.errors import Refused
from contract.site import Site

Tree = dict[str, Any]


class SiteEditError(Refused):
    """A change that cannot be made; `zh` and `en` say why, naming the thing (the message
    holds both: `detail`)."""

    zh: str
    en: str

    def __init__(self, zh: str, en: str | None = None) -> None:
        self.zh = zh
        self.en = en or zh
        super().__init__(self.detail)

    @property
    def detail(self) -> str:
        return self.en if self.zh == self.en else f"{self.zh} / {self.en}"


@dataclass(frozen=True)
class Change:
    """A new site and what changed, for the version's reason and the audit."""

    site: Site
    action: str  # e.g. "site_device_added" (the audit's action)
    reason: str  # e.g. "device smoke-0201 (smoke_dry_contact) added to gw-ld01, home h-01-0201"
    #: a device replacement: (gateway, device, old serial, new serial, note)
    replacement: tuple[str, str, str | None, str | None, str] | None = None


def validated(tree: Tree) -> Site:
    """The contract's validation of a whole site, its errors as one SiteEditError."""
    try:
        return Site.model_validate(tree)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = str(err["msg"]).removeprefix("Value error, ")
            where = ".".join(str(p) for p in err["loc"])
            problems.append(msg if err["type"] == "value_error" or not where else f"{where}: {msg}")
        text = "; ".join(problems)
        raise SiteEditError(f"场所数据无效：{text}", f"invalid site: {text}") from None


def as_tree(site: Site) -> Tree:
    return site.model_dump(mode="python")


#: The kinds of place in a site's structure: (kind, Chinese name).
_PLACES = {"community": "社区", "grid": "网格", "building": "楼栋", "home": "房屋"}


def _places(tree: Tree) -> Iterator[tuple[str, Tree, Tree | None]]:
    """(kind, place, the place it is in) for every community, grid, building and home."""
    for community in tree["communities"]:
        yield "community", community, None
        for grid in community["grids"]:
            yield "grid", grid, community
            for building in grid["buildings"]:
                yield "building", building, grid
                for home in building["homes"]:
                    yield "home", home, building


def _find(tree: Tree, kind: str, ident: str) -> tuple[Tree, Tree | None]:
    """The place of that kind and id and the place it is in; SiteEditError if there is none."""
    for found, place, parent in _places(tree):
        if found == kind and place["id"] == ident:
            return place, parent
    raise SiteEditError(f"{_PLACES[kind]} {ident} 不存在", f"unknown {kind} {ident}")


def find_community(tree: Tree, community_id: str) -> Tree:
    return _find(tree, "community", community_id)[0]


def find_grid(tree: Tree, grid_id: str) -> Tree:
    return _find(tree, "grid", grid_id)[0]


def find_building(tree: Tree, building_id: str) -> Tree:
    return _find(tree, "building", building_id)[0]


def find_home(tree: Tree, home_id: str) -> tuple[Tree, Tree]:
    """(building, home)."""
    home, building = _find(tree, "home", home_id)
    assert building is not None  # a home is always in a building
    return building, home


def find_gateway(tree: Tree, gateway_id: str) -> Tree:
    for gateway in tree["gateways"]:
        if gateway["id"] == gateway_id:
            return gateway
    raise SiteEditError(f"网关 {gateway_id} 不存在", f"unknown gateway {gateway_id}")


def find_device(tree: Tree, gateway_id: str, device_id: str) -> tuple[Tree, Tree]:
    gateway = find_gateway(tree, gateway_id)
    for device in gateway["devices"]:
        if device["id"] == device_id:
            return gateway, device
    raise SiteEditError(
        f"网关 {gateway_id} 上没有设备 {device_id}",
        f"no device {device_id} on gateway {gateway_id}",
    )


def used_by(tree: Tree, ident: str) -> str | None:
    """What already has this id (ids are unique across the site), if anything."""
    for kind, place, parent in _places(tree):
        if place["id"] == ident:
            where = f" in building {parent['id']}" if kind == "home" and parent else ""
            return f"{kind} {ident}{where}"
    for gateway in tree["gateways"]:
        if gateway["id"] == ident:
            return f"gateway {ident}"
    return None


def check_fresh(tree: Tree, kind_zh: str, kind: str, ident: str) -> None:
    used = used_by(tree, ident)
    if used is not None:
        raise SiteEditError(
            f"{kind_zh}编号 {ident} 已被使用（{used}）",
            f"{kind} id {ident} is already used by {used}",
        )
