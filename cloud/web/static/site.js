// The site registry: the tree (community → grid → building → home, gateways and devices
// under their building) and the installer's forms. Residents never appear here: the API
// does not send them on this page, for any role.
Object.assign(MESSAGES.zh, {
  siteTitle: "场所与设备", siteTree: "场所结构", version: "版本", savedBy: "保存人",
  fileDiffers: "磁盘上的场所文件与上次导入的不同；数据库中的版本仍然有效，管理员可重新导入。",
  csvImport: "从表格导入房屋（CSV）", csvFile: "CSV 文件", csvCheck: "预检", csvDo: "导入",
  csvHelp: "表头：社区、网格、楼栋编号、楼栋名称、地址、房屋编号、门牌（也可用英文表头，见英文界面）。UTF-8 或 GBK 编码均可。全部正确才会导入。",
  csvNoFile: "请先选择 CSV 文件", csvErrors: "文件有 {n} 处问题，未导入任何数据：",
  csvWould: "预检通过：将新增 {h} 户、{b} 栋楼（尚未导入）", csvDone: "已导入 {h} 户、{b} 栋楼（版本 {v}）",
  row: "行", column: "列", problem: "问题",
  addCommunity: "新建社区", addGrid: "新建网格", addBuilding: "新建楼栋", addHome: "新建房屋",
  addGateway: "新建网关", addDevice: "绑定设备", id: "编号", name: "名称", community: "社区",
  grid: "网格", building: "楼栋", address: "地址", homeName: "门牌", workerName: "网格员",
  workerPhone: "网格员电话", profile: "硬件配置", gateway: "网关", model: "型号", home: "房屋",
  pinRoles: {button: "按键", led: "指示灯", buzzer: "蜂鸣器", alarm: "报警", fault: "故障", relay: "继电器", power: "电源", water: "水浸"},
  pins: "引脚", adc: "ADC 通道", port: "串口", serialNo: "序列号", add: "添加", bind: "绑定",
  move: "移动", replace: "更换", remove: "拆除", moveTo: "移到房屋", newSerial: "新设备序列号",
  note: "说明", confirm: "确定", cancel: "取消", saved: "已保存：版本 {v}",
  removeConfirm: "拆除设备 {d}？此后它的消息将被拒收，历史记录保留。",
  moveTitle: "移动设备 {d}", replaceTitle: "更换设备 {d}（编号、房屋和历史记录不变）",
  noHomes: "尚无房屋", noGateways: "尚无网关", noDevices: "尚无设备", worker: "网格员",
  devicesBound: "台设备", readOnly: "只读：修改场所需要安装人员或管理员账号。",
  badPins: "引脚格式应为 角色=GPIO，例如 alarm=19, fault=20",
});
Object.assign(MESSAGES.en, {
  siteTitle: "Site & devices", siteTree: "Site structure", version: "version", savedBy: "saved by",
  fileDiffers: "The site file on disk differs from the one last imported; the version in the database stays in force. An admin may re-import it.",
  csvImport: "Import homes from a spreadsheet (CSV)", csvFile: "CSV file", csvCheck: "Check (dry run)", csvDo: "Import",
  csvHelp: "Columns: community, grid, building_id, building, address, home_id, home (Chinese headers too). UTF-8 or GBK. Imported only if every row is right.",
  csvNoFile: "Choose a CSV file first", csvErrors: "{n} problem(s) in the file; nothing was imported:",
  csvWould: "Check passed: {h} home(s), {b} building(s) would be added (not imported yet)", csvDone: "Imported {h} home(s), {b} building(s) (version {v})",
  row: "Row", column: "Column", problem: "Problem",
  addCommunity: "New community", addGrid: "New grid", addBuilding: "New building", addHome: "New home",
  addGateway: "New gateway", addDevice: "Bind a device", id: "Id", name: "Name", community: "Community",
  grid: "Grid", building: "Building", address: "Address", homeName: "Home", workerName: "Grid worker",
  workerPhone: "Grid worker's phone", profile: "Board profile", gateway: "Gateway", model: "Model", home: "Home",
  pinRoles: {},
  pins: "Pins", adc: "ADC channel", port: "Serial port", serialNo: "Serial no.", add: "Add", bind: "Bind",
  move: "Move", replace: "Replace", remove: "Remove", moveTo: "Move to home", newSerial: "New unit's serial no.",
  note: "Note", confirm: "OK", cancel: "Cancel", saved: "Saved: version {v}",
  removeConfirm: "Remove device {d}? Its messages will be rejected from then on; its history stays.",
  moveTitle: "Move device {d}", replaceTitle: "Replace device {d} (id, home and history stay)",
  noHomes: "No homes yet", noGateways: "No gateway yet", noDevices: "No devices yet", worker: "grid worker",
  devicesBound: "device(s)", readOnly: "Read only: changing the site needs an installer or admin account.",
  badPins: "Pins are role=GPIO, e.g. alarm=19, fault=20",
});

const $ = (sel) => document.querySelector(sel);
const EDITORS = ["installer", "admin"];
let site = null; // the tree from GET /api/site
let role = "";

function fmt(key, values) { return t(key).replace(/\{(\w+)\}/g, (_, k) => values[k]); }

// A refusal from the API, readable: our own detail strings, CSV row errors, or pydantic's list.
function describe(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((e) => (e.zh !== undefined ? (LANG === "zh" ? e.zh : e.en) : problemText(e))).join("\n");
  }
  return JSON.stringify(detail);
}

function say(text, ok) {
  const box = $("#msg");
  box.textContent = text;
  box.className = ok ? "ok" : "error";
  box.hidden = false;
}

async function call(method, path, body) {
  const init = {method, headers: {}};
  if (body !== undefined) { init.headers["content-type"] = "application/json"; init.body = JSON.stringify(body); }
  const resp = await fetch(path, init);
  if (resp.status === 401) { location.href = "/login"; throw new Error("signed out"); }
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(Array.isArray(data.detail) ? describe(data.detail) : refusalText(data, resp.status));
  return data;
}

// ---- the tree -----------------------------------------------------------------------------

function* buildings() {
  for (const c of site.communities) for (const g of c.grids) for (const b of g.buildings) yield [c, g, b];
}

function deviceRow(gw, d) {
  const where = d.home_name ? `${esc(d.home_name)} <span class="sub">${esc(d.home)}</span>` : esc(d.home);
  const pins = Object.entries(d.pins).map(([r, p]) => `${MESSAGES[LANG].pinRoles[r] || r} GPIO${p}`).join(LANG === "zh" ? "，" : ", ");
  const extra = [pins, d.adc_channel != null ? `ADC ${d.adc_channel}` : "", d.port || "", d.serial ? `SN ${d.serial}` : ""].filter(Boolean).join(" · ");
  const actions = EDITORS.includes(role) ? `<span class="actions">
      <button class="link" data-act="move" data-gw="${esc(gw.id)}" data-dev="${esc(d.id)}">${t("move")}</button>
      <button class="link" data-act="replace" data-gw="${esc(gw.id)}" data-dev="${esc(d.id)}">${t("replace")}</button>
      <button class="link danger" data-act="remove" data-gw="${esc(gw.id)}" data-dev="${esc(d.id)}">${t("remove")}</button></span>` : "";
  return `<li class="device" data-device="${esc(gw.id)}/${esc(d.id)}"><b>${esc(d.id)}</b> ${esc(d.model)} → ${where}
    <div class="sub">${esc(extra)}</div>${actions}</li>`;
}

function renderTree() {
  $("#version").textContent = `${t("version")} ${site.version}`;
  $("#file-differs").hidden = !(site.file_differs && role === "admin");
  const html = site.communities.map((c) => `
    <details open class="community" data-id="${esc(c.id)}"><summary>${esc(c.name)} <span class="sub">${esc(c.id)}</span></summary>
    ${c.grids.map((g) => `
      <details open class="grid" data-id="${esc(g.id)}"><summary>${esc(g.name)} <span class="sub">${esc(g.id)}${g.worker ? ` · ${t("worker")} ${esc(g.worker.name)} ${esc(g.worker.phone)}` : ""}</span></summary>
      ${g.buildings.map((b) => `
        <details open class="building" data-id="${esc(b.id)}"><summary>${esc(b.name)} <span class="sub">${esc(b.id)}${b.address ? ` · ${esc(b.address)}` : ""}</span></summary>
          <ul class="homes">${b.homes.map((h) => `<li class="home" data-home="${esc(h.id)}">${esc(h.name)} <span class="sub">${esc(h.id)}${h.devices.length ? ` · ${h.devices.length} ${t("devicesBound")}` : ""}</span></li>`).join("") || `<li class="sub">${t("noHomes")}</li>`}</ul>
          ${b.gateways.map((gw) => `
            <div class="gateway" data-gateway="${esc(gw.id)}"><div><b>${t("gateway")} ${esc(gw.id)}</b> <span class="sub">${esc(gw.profile)}</span></div>
              <ul class="devices">${gw.devices.map((d) => deviceRow(gw, d)).join("") || `<li class="sub">${t("noDevices")}</li>`}</ul></div>`).join("")}
        </details>`).join("")}
      </details>`).join("")}
    </details>`).join("");
  $("#tree").innerHTML = html;
  fillSelects();
}

function options(kind) {
  if (kind === "communities") return site.communities.map((c) => [c.id, `${c.name} (${c.id})`]);
  if (kind === "grids") return site.communities.flatMap((c) => c.grids.map((g) => [g.id, `${c.name} · ${g.name} (${g.id})`]));
  if (kind === "buildings") return [...buildings()].map(([, g, b]) => [b.id, `${g.name} · ${b.name} (${b.id})`]);
  if (kind === "gateways") return [...buildings()].flatMap(([, , b]) => b.gateways.map((gw) => [gw.id, `${gw.id} · ${b.name}`]));
  if (kind === "models") return site.models.map((m) => [m, m]);
  if (kind === "profiles") return site.profiles.map((p) => [p, p]);
  if (kind === "gatewayHomes") return homesOfGateway($("#device-form [name=gateway]").value);
  return [];
}

function homesOfGateway(gatewayId) {
  for (const [, , b] of buildings()) {
    if (b.gateways.some((gw) => gw.id === gatewayId)) return b.homes.map((h) => [h.id, `${h.name} (${h.id})`]);
  }
  return [];
}

function fill(select, items) {
  const keep = select.value;
  select.innerHTML = items.map(([v, label]) => `<option value="${esc(v)}">${esc(label)}</option>`).join("");
  if (items.some(([v]) => v === keep)) select.value = keep;
}

function fillSelects() {
  // the gateway first: the home list depends on it
  document.querySelectorAll("select[data-options]:not([data-options=gatewayHomes])").forEach((s) => fill(s, options(s.dataset.options)));
  document.querySelectorAll("select[data-options=gatewayHomes]").forEach((s) => fill(s, options("gatewayHomes")));
}

async function load() {
  site = await call("GET", "/api/site");
  renderTree();
}

// ---- forms ----------------------------------------------------------------------------------

function values(form) {
  const out = {};
  for (const [k, v] of new FormData(form).entries()) out[k] = typeof v === "string" ? v.trim() : v;
  return out;
}

async function submit(form, method, path, body) {
  try {
    const saved = await call(method, path, body);
    say(fmt("saved", {v: saved.version}), true);
    form?.reset?.();
    await load();
  } catch (err) {
    say(err.message, false);
  }
}

function parsePins(text) {
  const pins = {};
  for (const part of text.split(/[,，\s]+/).filter(Boolean)) {
    const m = part.match(/^([a-z_]+)\s*[=:：]\s*(?:GPIO)?(\d+)$/i);
    if (!m) return null;
    pins[m[1].toLowerCase()] = Number(m[2]);
  }
  return pins;
}

function wireForms() {
  const on = (id, handler) => $(id).addEventListener("submit", (e) => { e.preventDefault(); handler(e.target); });
  on("#community-form", (f) => { const v = values(f); submit(f, "POST", "/api/site/communities", {id: v.id, name: v.name}); });
  on("#grid-form", (f) => {
    const v = values(f);
    const worker = v.worker_name ? {name: v.worker_name, phone: v.worker_phone} : null;
    submit(f, "POST", "/api/site/grids", {community: v.community, id: v.id, name: v.name, worker});
  });
  on("#building-form", (f) => { const v = values(f); submit(f, "POST", "/api/site/buildings", {grid: v.grid, id: v.id, name: v.name, address: v.address}); });
  on("#home-form", (f) => { const v = values(f); submit(f, "POST", "/api/site/homes", {building: v.building, homes: [{id: v.id, name: v.name}]}); });
  on("#gateway-form", (f) => { const v = values(f); submit(f, "POST", "/api/site/gateways", {id: v.id, building: v.building, profile: v.profile}); });
  on("#device-form", (f) => {
    const v = values(f);
    const pins = parsePins(v.pins || "");
    if (pins === null) { say(t("badPins"), false); return; }
    const body = {id: v.id, model: v.model, home: v.home, pins};
    if (v.adc_channel !== "") body.adc_channel = Number(v.adc_channel);
    if (v.port) body.port = v.port;
    if (v.serial) body.serial = v.serial;
    submit(f, "POST", `/api/site/gateways/${encodeURIComponent(v.gateway)}/devices`, body);
  });
  $("#device-form [name=gateway]").addEventListener("change", () => fill($("#device-form [name=home]"), options("gatewayHomes")));
}

// ---- device actions (move, replace, remove) ---------------------------------------------------

function deviceAction(act, gw, dev) {
  const base = `/api/site/gateways/${encodeURIComponent(gw)}/devices/${encodeURIComponent(dev)}`;
  if (act === "remove") {
    if (confirm(fmt("removeConfirm", {d: `${gw}/${dev}`}))) submit(null, "DELETE", base);
    return;
  }
  const dialog = $("#device-dialog");
  const form = $("#device-action");
  form.reset();
  $("#move-home").hidden = act !== "move";
  $("#replace-serial").hidden = $("#replace-note").hidden = act !== "replace";
  $("#device-action-title").textContent = fmt(act === "move" ? "moveTitle" : "replaceTitle", {d: `${gw}/${dev}`});
  fill(form.querySelector("[name=home]"), homesOfGateway(gw));
  dialog.onclose = () => {
    if (dialog.returnValue !== "ok") return;
    const v = values(form);
    if (act === "move") submit(null, "POST", `${base}/move`, {home: v.home});
    else submit(null, "POST", `${base}/replace`, {serial: v.serial || null, note: v.note || ""});
  };
  dialog.showModal();
}

// ---- CSV import -------------------------------------------------------------------------------

async function importCsv(dryRun) {
  const file = $("#csv-file").files[0];
  const errors = $("#csv-errors"), preview = $("#csv-preview");
  errors.hidden = preview.hidden = true;
  if (!file) { say(t("csvNoFile"), false); return; }
  const bytes = await file.arrayBuffer(); // sent as is: the server reads UTF-8 or GBK
  const resp = await fetch(`/api/site/import${dryRun ? "?dry_run=true" : ""}`, {method: "POST", headers: {"content-type": "text/csv"}, body: bytes});
  if (resp.status === 401) { location.href = "/login"; return; }
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const list = Array.isArray(data.detail) ? data.detail : [{row: 0, column: "", zh: describe(data.detail), en: describe(data.detail)}];
    errors.innerHTML = `<p>${esc(fmt("csvErrors", {n: list.length}))}</p>
      <table><thead><tr><th>${t("row")}</th><th>${t("column")}</th><th>${t("problem")}</th></tr></thead><tbody>
      ${list.map((e) => `<tr><td>${e.row || ""}</td><td>${esc(e.column || "")}</td><td>${esc(LANG === "zh" ? e.zh : e.en)}</td></tr>`).join("")}
      </tbody></table>`;
    errors.hidden = false;
    $("#msg").hidden = true;
    return;
  }
  const counts = {h: data.homes.length, b: data.buildings.length, v: data.version};
  preview.innerHTML = `<p>${esc(fmt(dryRun ? "csvWould" : "csvDone", counts))}</p><ul>${data.homes.map((h) => `<li>${t("row")} ${h.row}: ${esc(h.building)} · ${esc(h.name)} <span class="sub">${esc(h.id)}</span></li>`).join("")}</ul>`;
  preview.hidden = false;
  say(fmt(dryRun ? "csvWould" : "csvDone", counts), true);
  if (!dryRun) await load();
}

// ---- the page -------------------------------------------------------------------------------

(async () => {
  const user = await startPage("site", {title: "siteTitle", onLang: () => { if (site) renderTree(); }});
  if (!user) return;
  role = user.role;
  if (EDITORS.includes(role)) {
    $("#forms").hidden = false;
    wireForms();
    $("#csv-check").onclick = () => importCsv(true);
    $("#csv-import").onclick = () => importCsv(false);
    $("#tree").addEventListener("click", (e) => {
      const b = e.target.closest("button[data-act]");
      if (b) deviceAction(b.dataset.act, b.dataset.gw, b.dataset.dev);
    });
  } else {
    const p = document.createElement("p"); p.className = "notice"; p.textContent = t("readOnly");
    $(".tree-pane").prepend(p);
  }
  await load();
})();
