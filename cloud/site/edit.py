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

from cloud.site.hardware import Hardware
from cloud.site.tree import (
    Change,
    SiteEditError,
    Tree,
    as_tree,
    check_fresh,
    find_building,
    find_community,
    find_device,
    find_gateway,
    find_grid,
    find_home,
    used_by,
    validated,
)
from contract.site import DeviceSpec, Resident, Site, Worker


def add_community(site: Site, community_id: str, name: str) -> Change:
    tree = as_tree(site)
    check_fresh(tree, "社区", "community", community_id)
    tree["communities"].append({"id": community_id, "name": name, "grids": []})
    return Change(validated(tree), "site_community_added", f"community {community_id} ({name})")


def rename_community(site: Site, community_id: str, name: str) -> Change:
    tree = as_tree(site)
    community = find_community(tree, community_id)
    old, community["name"] = community["name"], name
    reason = f"community {community_id} renamed {old} → {name}"
    return Change(validated(tree), "site_community_changed", reason)


def add_grid(
    site: Site, community_id: str, grid_id: str, name: str, worker: Worker | None
) -> Change:
    tree = as_tree(site)
    community = find_community(tree, community_id)
    check_fresh(tree, "网格", "grid", grid_id)
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
    tree = as_tree(site)
    grid = find_grid(tree, grid_id)
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
    tree = as_tree(site)
    grid = find_grid(tree, grid_id)
    check_fresh(tree, "楼栋", "building", building_id)
    grid["buildings"].append({"id": building_id, "name": name, "address": address, "homes": []})
    reason = f"building {building_id} ({name}) added to grid {grid_id}"
    return Change(validated(tree), "site_building_added", reason)


def change_building(
    site: Site, building_id: str, name: str | None = None, address: str | None = None
) -> Change:
    tree = as_tree(site)
    building = find_building(tree, building_id)
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
    tree = as_tree(site)
    building = find_building(tree, building_id)
    names = {home["name"]: home["id"] for home in building["homes"]}
    ids: set[str] = set()
    for home_id, name in homes:
        if home_id in ids:
            raise SiteEditError(
                f"楼栋 {building_id} 中房屋 {home_id} 重复",
                f"duplicate home {home_id} in building {building_id}",
            )
        ids.add(home_id)
        used = used_by(tree, home_id)
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
    tree = as_tree(site)
    _, home = find_home(tree, home_id)
    old, home["name"] = home["name"], name
    return Change(validated(tree), "site_home_changed", f"home {home_id} renamed {old} → {name}")


def remove_home(site: Site, home_id: str, *, drop_residents: bool = False) -> Change:
    """Remove a home with nothing bound to it; residents on file go only with
    `drop_residents` (an admin's call)."""
    tree = as_tree(site)
    building, home = find_home(tree, home_id)
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
    tree = as_tree(site)
    _, home = find_home(tree, home_id)
    home["residents"] = [r.model_dump() for r in residents]
    contacts = sum(len(r.contacts) for r in residents)
    reason = f"residents of home {home_id} set: {len(residents)} resident(s), {contacts} contact(s)"
    return Change(validated(tree), "site_residents_changed", reason)


def add_gateway(
    site: Site, gateway_id: str, building_id: str, profile: str, hardware: Hardware
) -> Change:
    tree = as_tree(site)
    find_building(tree, building_id)
    check_fresh(tree, "网关", "gateway", gateway_id)
    hardware.check_profile(profile)
    tree["gateways"].append(
        {"id": gateway_id, "building": building_id, "profile": profile, "devices": []}
    )
    reason = f"gateway {gateway_id} ({profile}) added to building {building_id}"
    return Change(validated(tree), "site_gateway_added", reason)


def _home_in_gateway_building(tree: Tree, gateway: Tree, home_id: str) -> None:
    building, _ = find_home(tree, home_id)
    if building["id"] != gateway["building"]:
        raise SiteEditError(
            f"房屋 {home_id} 在楼栋 {building['id']}，网关 {gateway['id']} 在楼栋 "
            f"{gateway['building']}：设备只能绑定到网关所在楼栋的房屋",
            f"home {home_id} is in building {building['id']}, gateway {gateway['id']} in "
            f"building {gateway['building']}: a device binds to a home of its gateway's building",
        )


def add_device(site: Site, gateway_id: str, spec: DeviceSpec, hardware: Hardware) -> Change:
    tree = as_tree(site)
    gateway = find_gateway(tree, gateway_id)
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
    tree = as_tree(site)
    gateway, device = find_device(tree, gateway_id, device_id)
    _home_in_gateway_building(tree, gateway, home_id)
    old, device["home"] = device["home"], home_id
    reason = f"device {gateway_id}/{device_id} moved from home {old} to {home_id}"
    return Change(validated(tree), "site_device_moved", reason)


def replace_device(
    site: Site, gateway_id: str, device_id: str, serial: str | None, note: str
) -> Change:
    """A new unit in place of a failed one: same id, model, home and pins (so its history,
    keyed by gateway and device id, carries on); the new serial is recorded."""
    tree = as_tree(site)
    _, device = find_device(tree, gateway_id, device_id)
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
    tree = as_tree(site)
    gateway, device = find_device(tree, gateway_id, device_id)
    gateway["devices"].remove(device)
    reason = f"device {gateway_id}/{device_id} ({device['model']}) removed"
    return Change(validated(tree), "site_device_removed", reason)


def replace_all(site: Site, new: Site, reason: str, hardware: Hardware) -> Change:
    """A whole new document (an admin's re-import of the site file), every gateway checked."""
    new = validated(new.model_dump(mode="python"))
    for gateway in new.gateways:
        hardware.check_gateway(new, gateway.id)
    return Change(new, "site_reimported", reason)
