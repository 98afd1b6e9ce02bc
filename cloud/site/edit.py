"""Changes to the site registry: each operation takes the site in force and returns a new,
fully validated one (or raises `SiteEditError` naming what is wrong, in Chinese and English).

Pure and synchronous (it reads the device model and board profile files, so the service runs
it in a thread): nothing is saved or swapped here — that is cloud/site_changes/service.py's
job. The new site passes the contract's own validators (duplicate ids, unknown references,
duplicate home names in a building) and, for a gateway, the hardware checks the gateway itself
runs (contract/wiring.py: the model exists, its pins are free and not reserved by the board,
ADC channel and serial port), so the cloud never accepts a binding the gateway would refuse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from cloud.errors import Refused
from contract.catalogue import Catalogue
from contract.devices import DeviceModelBase
from contract.site import DeviceSpec, Resident, Site, Worker
from contract.wiring import GatewayConfigError, validate_gateway

Tree = dict[str, Any]


class SiteEditError(Refused):
    """A change that cannot be made; `zh` and `en` say why, naming the thing (the message
    holds both: `detail`)."""

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


@dataclass
class Hardware:
    """Where the device models and board profiles are (firmware_configs/)."""

    catalogue: Catalogue = field(default_factory=Catalogue)

    def models_available(self) -> list[str]:
        return self.catalogue.model_names()

    def profiles_available(self) -> list[str]:
        return self.catalogue.profile_names()

    def check_profile(self, profile: str) -> None:
        if profile not in self.profiles_available():
            raise SiteEditError(
                f"网关型号配置 {profile} 不存在（可选：{'、'.join(self.profiles_available())}）",
                f"unknown profile {profile} (known: {', '.join(self.profiles_available())})",
            )

    def check_gateway(self, site: Site, gateway_id: str) -> None:
        """The gateway's devices against its board profile and their models."""
        spec = site.gateway(gateway_id)
        models: dict[str, DeviceModelBase] = {}
        known = self.models_available()
        for device in spec.devices:
            if device.model not in known:
                raise SiteEditError(
                    f"设备 {device.id}：型号 {device.model} 不存在（可选：{'、'.join(known)}）",
                    f"device {device.id}: unknown model {device.model} (known: {', '.join(known)})",
                )
            models[device.model] = self.catalogue.model(device.model)
        self.check_profile(spec.profile)
        profile = self.catalogue.profile(spec.profile)
        try:
            validate_gateway(spec, profile, models, source="site")
        except GatewayConfigError as exc:
            lines = [line.strip(" -") for line in str(exc).splitlines()[1:]]
            for index, device in enumerate(spec.devices):  # name the device, not its index
                where = f"gateways[{gateway_id}].devices[{index}]"
                lines = [line.replace(where, f"device {device.id}") for line in lines]
            raise SiteEditError(
                "设备与网关硬件不符：" + "；".join(lines),
                f"the devices do not fit gateway {gateway_id}: " + "; ".join(lines),
            ) from None


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


# ---- finding things in the tree (a plain dict copy of the site) -----------------------------


def _tree(site: Site) -> Tree:
    return site.model_dump(mode="python")


def _community(tree: Tree, community_id: str) -> Tree:
    for community in tree["communities"]:
        if community["id"] == community_id:
            return community
    raise SiteEditError(f"社区 {community_id} 不存在", f"unknown community {community_id}")


def _grid(tree: Tree, grid_id: str) -> Tree:
    for community in tree["communities"]:
        for grid in community["grids"]:
            if grid["id"] == grid_id:
                return grid
    raise SiteEditError(f"网格 {grid_id} 不存在", f"unknown grid {grid_id}")


def _building(tree: Tree, building_id: str) -> Tree:
    for community in tree["communities"]:
        for grid in community["grids"]:
            for building in grid["buildings"]:
                if building["id"] == building_id:
                    return building
    raise SiteEditError(f"楼栋 {building_id} 不存在", f"unknown building {building_id}")


def _home(tree: Tree, home_id: str) -> tuple[Tree, Tree]:
    """(building, home)."""
    for community in tree["communities"]:
        for grid in community["grids"]:
            for building in grid["buildings"]:
                for home in building["homes"]:
                    if home["id"] == home_id:
                        return building, home
    raise SiteEditError(f"房屋 {home_id} 不存在", f"unknown home {home_id}")


def _gateway(tree: Tree, gateway_id: str) -> Tree:
    for gateway in tree["gateways"]:
        if gateway["id"] == gateway_id:
            return gateway
    raise SiteEditError(f"网关 {gateway_id} 不存在", f"unknown gateway {gateway_id}")


def _device(tree: Tree, gateway_id: str, device_id: str) -> tuple[Tree, Tree]:
    gateway = _gateway(tree, gateway_id)
    for device in gateway["devices"]:
        if device["id"] == device_id:
            return gateway, device
    raise SiteEditError(
        f"网关 {gateway_id} 上没有设备 {device_id}",
        f"no device {device_id} on gateway {gateway_id}",
    )


def _used(tree: Tree, ident: str) -> str | None:
    """What already has this id (ids are unique across the site), if anything."""
    for community in tree["communities"]:
        if community["id"] == ident:
            return f"community {ident}"
        for grid in community["grids"]:
            if grid["id"] == ident:
                return f"grid {ident}"
            for building in grid["buildings"]:
                if building["id"] == ident:
                    return f"building {ident}"
                for home in building["homes"]:
                    if home["id"] == ident:
                        return f"home {ident} in building {building['id']}"
    for gateway in tree["gateways"]:
        if gateway["id"] == ident:
            return f"gateway {ident}"
    return None


def _fresh(tree: Tree, kind_zh: str, kind: str, ident: str) -> None:
    used = _used(tree, ident)
    if used is not None:
        raise SiteEditError(
            f"{kind_zh}编号 {ident} 已被使用（{used}）",
            f"{kind} id {ident} is already used by {used}",
        )


# ---- the operations -------------------------------------------------------------------------


def add_community(site: Site, community_id: str, name: str) -> Change:
    tree = _tree(site)
    _fresh(tree, "社区", "community", community_id)
    tree["communities"].append({"id": community_id, "name": name, "grids": []})
    return Change(validated(tree), "site_community_added", f"community {community_id} ({name})")


def rename_community(site: Site, community_id: str, name: str) -> Change:
    tree = _tree(site)
    community = _community(tree, community_id)
    old, community["name"] = community["name"], name
    reason = f"community {community_id} renamed {old} → {name}"
    return Change(validated(tree), "site_community_changed", reason)


def add_grid(
    site: Site, community_id: str, grid_id: str, name: str, worker: Worker | None
) -> Change:
    tree = _tree(site)
    community = _community(tree, community_id)
    _fresh(tree, "网格", "grid", grid_id)
    community["grids"].append(
        {
            "id": grid_id,
            "name": name,
            "worker": worker.model_dump() if worker else None,
            "buildings": [],
        }
    )
    reason = f"grid {grid_id} ({name}) added to community {community_id}"
    return Change(validated(tree), "site_grid_added", reason)


def change_grid(
    site: Site, grid_id: str, name: str | None = None, worker: Worker | None = None
) -> Change:
    tree = _tree(site)
    grid = _grid(tree, grid_id)
    what = []
    if name is not None and name != grid["name"]:
        what.append(f"renamed {grid['name']} → {name}")
        grid["name"] = name
    if worker is not None:
        grid["worker"] = worker.model_dump()
        what.append("grid worker set")
    reason = f"grid {grid_id}: {', '.join(what) or 'no change'}"
    return Change(validated(tree), "site_grid_changed", reason)


def add_building(site: Site, grid_id: str, building_id: str, name: str, address: str) -> Change:
    tree = _tree(site)
    grid = _grid(tree, grid_id)
    _fresh(tree, "楼栋", "building", building_id)
    grid["buildings"].append({"id": building_id, "name": name, "address": address, "homes": []})
    reason = f"building {building_id} ({name}) added to grid {grid_id}"
    return Change(validated(tree), "site_building_added", reason)


def change_building(
    site: Site, building_id: str, name: str | None = None, address: str | None = None
) -> Change:
    tree = _tree(site)
    building = _building(tree, building_id)
    what = []
    if name is not None and name != building["name"]:
        what.append(f"renamed {building['name']} → {name}")
        building["name"] = name
    if address is not None and address != building["address"]:
        building["address"] = address
        what.append("address changed")
    reason = f"building {building_id}: {', '.join(what) or 'no change'}"
    return Change(validated(tree), "site_building_changed", reason)


def add_homes(site: Site, building_id: str, homes: list[tuple[str, str]]) -> Change:
    """Homes (id, name) added to one building."""
    tree = _tree(site)
    building = _building(tree, building_id)
    names = {home["name"]: home["id"] for home in building["homes"]}
    ids: set[str] = set()
    for home_id, name in homes:
        if home_id in ids:
            raise SiteEditError(
                f"楼栋 {building_id} 中房屋 {home_id} 重复",
                f"duplicate home {home_id} in building {building_id}",
            )
        ids.add(home_id)
        used = _used(tree, home_id)
        if used is not None:
            raise SiteEditError(
                f"房屋编号 {home_id} 已被使用（{used}）",
                f"duplicate home {home_id}: already in the registry ({used})",
            )
        if name in names:
            raise SiteEditError(
                f"楼栋 {building_id} 中已有门牌“{name}”（房屋 {names[name]}）",
                f"building {building_id} already has a home named {name!r} ({names[name]})",
            )
        names[name] = home_id
        building["homes"].append({"id": home_id, "name": name, "residents": []})
    listed = ", ".join(h for h, _ in homes)
    reason = f"{len(homes)} home(s) added to building {building_id}: {listed}"
    return Change(validated(tree), "site_homes_added", reason)


def rename_home(site: Site, home_id: str, name: str) -> Change:
    tree = _tree(site)
    _, home = _home(tree, home_id)
    old, home["name"] = home["name"], name
    return Change(validated(tree), "site_home_changed", f"home {home_id} renamed {old} → {name}")


def remove_home(site: Site, home_id: str, *, drop_residents: bool = False) -> Change:
    """Remove a home with nothing bound to it; residents on file go only with
    `drop_residents` (an admin's call)."""
    tree = _tree(site)
    building, home = _home(tree, home_id)
    bound = [
        f"{gateway['id']}/{device['id']}"
        for gateway in tree["gateways"]
        for device in gateway["devices"]
        if device["home"] == home_id
    ]
    if bound:
        raise SiteEditError(
            f"房屋 {home_id} 还绑定着设备 {'、'.join(bound)}：请先移走或拆除这些设备",
            f"home {home_id} has devices bound ({', '.join(bound)}): move or remove them first",
        )
    if home.get("residents") and not drop_residents:
        raise SiteEditError(
            f"房屋 {home_id} 登记有住户信息：只有管理员可以删除",
            f"home {home_id} has residents on file: only an admin may remove it",
        )
    building["homes"].remove(home)
    reason = f"home {home_id} ({home['name']}) removed from building {building['id']}"
    return Change(validated(tree), "site_home_removed", reason)


def set_residents(site: Site, home_id: str, residents: list[Resident]) -> Change:
    """The residents of a home and their contacts (duty-room data). The reason names the
    home and counts, never the personal data itself."""
    tree = _tree(site)
    _, home = _home(tree, home_id)
    home["residents"] = [r.model_dump() for r in residents]
    contacts = sum(len(r.contacts) for r in residents)
    reason = f"residents of home {home_id} set: {len(residents)} resident(s), {contacts} contact(s)"
    return Change(validated(tree), "site_residents_changed", reason)


def add_gateway(
    site: Site, gateway_id: str, building_id: str, profile: str, hardware: Hardware
) -> Change:
    tree = _tree(site)
    _building(tree, building_id)
    _fresh(tree, "网关", "gateway", gateway_id)
    hardware.check_profile(profile)
    tree["gateways"].append(
        {"id": gateway_id, "building": building_id, "profile": profile, "devices": []}
    )
    reason = f"gateway {gateway_id} ({profile}) added to building {building_id}"
    return Change(validated(tree), "site_gateway_added", reason)


def _home_in_gateway_building(tree: Tree, gateway: Tree, home_id: str) -> None:
    building, _ = _home(tree, home_id)
    if building["id"] != gateway["building"]:
        raise SiteEditError(
            f"房屋 {home_id} 在楼栋 {building['id']}，网关 {gateway['id']} 在楼栋 "
            f"{gateway['building']}：设备只能绑定到网关所在楼栋的房屋",
            f"home {home_id} is in building {building['id']}, gateway {gateway['id']} in "
            f"building {gateway['building']}: a device binds to a home of its gateway's building",
        )


def add_device(site: Site, gateway_id: str, spec: DeviceSpec, hardware: Hardware) -> Change:
    tree = _tree(site)
    gateway = _gateway(tree, gateway_id)
    if any(d["id"] == spec.id for d in gateway["devices"]):
        raise SiteEditError(
            f"网关 {gateway_id} 上已有设备 {spec.id}",
            f"duplicate device {spec.id} on gateway {gateway_id}",
        )
    _home_in_gateway_building(tree, gateway, spec.home)
    used = {pin: f"{d['id']}.{role}" for d in gateway["devices"] for role, pin in d["pins"].items()}
    for pin in spec.pins.values():
        if pin in used:
            raise SiteEditError(
                f"GPIO{pin} 已被 {used[pin]} 占用（网关 {gateway_id}）",
                f"GPIO{pin} is already used by {used[pin]} on gateway {gateway_id}",
            )
    gateway["devices"].append(spec.model_dump())
    new = validated(tree)
    hardware.check_gateway(new, gateway_id)
    reason = f"device {spec.id} ({spec.model}) added to {gateway_id}, home {spec.home}"
    return Change(new, "site_device_added", reason)


def move_device(site: Site, gateway_id: str, device_id: str, home_id: str) -> Change:
    tree = _tree(site)
    gateway, device = _device(tree, gateway_id, device_id)
    _home_in_gateway_building(tree, gateway, home_id)
    old, device["home"] = device["home"], home_id
    reason = f"device {gateway_id}/{device_id} moved from home {old} to {home_id}"
    return Change(validated(tree), "site_device_moved", reason)


def replace_device(
    site: Site, gateway_id: str, device_id: str, serial: str | None, note: str
) -> Change:
    """A new unit in place of a failed one: same id, model, home and pins (so its history,
    keyed by gateway and device id, carries on); the new serial is recorded."""
    tree = _tree(site)
    _, device = _device(tree, gateway_id, device_id)
    old = device.get("serial")
    device["serial"] = serial
    reason = f"device {gateway_id}/{device_id} replaced (serial {old or '-'} → {serial or '-'})" + (
        f": {note}" if note else ""
    )
    return Change(
        validated(tree),
        "site_device_replaced",
        reason,
        replacement=(gateway_id, device_id, old, serial, note),
    )


def remove_device(site: Site, gateway_id: str, device_id: str) -> Change:
    tree = _tree(site)
    gateway, device = _device(tree, gateway_id, device_id)
    gateway["devices"].remove(device)
    reason = f"device {gateway_id}/{device_id} ({device['model']}) removed"
    return Change(validated(tree), "site_device_removed", reason)


def replace_all(site: Site, new: Site, reason: str, hardware: Hardware) -> Change:
    """A whole new document (an admin's re-import of the site file), every gateway checked."""
    new = validated(new.model_dump(mode="python"))
    for gateway in new.gateways:
        hardware.check_gateway(new, gateway.id)
    return Change(new, "site_reimported", reason)


Operation = Callable[[Site], Change]
