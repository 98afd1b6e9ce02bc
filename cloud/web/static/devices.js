// Device health (设备状态): every registered device by community → grid → building, with its
// state, last seen, battery and signal; every gateway online since / offline since. Reads
// GET /api/devices/health every few seconds.
Object.assign(MESSAGES.zh, {
  title: "街道值班室 · 设备状态", devTitle: "街道值班室 · 设备状态", devLoading: "读取中",
  devUpdated: "已更新", devCounts: "各状态设备数", devStale: "无法读取，正在重试…", devNone: "没有登记的设备",
  devStates: {online: "在线", silent: "失联", faulty: "故障", low_battery: "低电量", under_test: "测试中", never_heard: "从未上报"},
  gwStates: {online: "在线", offline: "离线", unknown: "未上报"},
  gwSince: {online: "自", offline: "自", unknown: ""},
  gwCount: "网关", devCol: "设备", modelCol: "型号", homeCol: "住户", stateCol: "状态",
  seenCol: "最后上报", batteryCol: "电量", signalCol: "信号", alarmsCol: "未办结告警",
  never: "从未", ago: "前", every: "应每", seconds: "秒上报", storeError: "时序库暂不可用，电量和信号可能缺失：",
  testModes: {walk_test: "巡检测试", maintenance: "维护窗口"}, lastSeen: "最后上报",
});
Object.assign(MESSAGES.en, {
  title: "Street duty room · Device health", devTitle: "Street duty room · Device health", devLoading: "Loading",
  devCounts: "Devices by state", devUpdated: "Updated", devStale: "Cannot read, retrying…", devNone: "No registered devices",
  devStates: {online: "online", silent: "silent", faulty: "faulty", low_battery: "low battery", under_test: "under test", never_heard: "never heard"},
  gwStates: {online: "online", offline: "offline", unknown: "no status yet"},
  gwSince: {online: "since", offline: "since", unknown: ""},
  gwCount: "Gateways", devCol: "Device", modelCol: "Model", homeCol: "Home", stateCol: "State",
  seenCol: "Last seen", batteryCol: "Battery", signalCol: "Signal", alarmsCol: "Open alarms",
  never: "never", ago: "ago", every: "expected every", seconds: "s", storeError: "Telemetry store unavailable, battery and signal may be missing: ",
  testModes: {walk_test: "walk test", maintenance: "maintenance"}, lastSeen: "last seen",
});

const REFRESH_MS = 5000;
const STATE_ORDER = ["online", "silent", "faulty", "low_battery", "under_test", "never_heard"];
const $ = (sel) => document.querySelector(sel);
let report = null;
let role = "";

// Escapes for text and for attribute values (quotes too).
function msg(group, key) { return (MESSAGES[LANG][group] || {})[key] ?? key; }
// Why a device is in its state, as the cloud says it (cloud/devices/health.py), in the user's
// language.
function reasonText(reason) {
  let m = reason.match(/^(walk_test|maintenance) #(\d+)$/);
  if (m) return `${msg("testModes", m[1])} #${m[2]}`;
  if (LANG !== "zh") return reason;
  m = reason.match(/^not heard for (\d+) s \(expected every ([\d.]+) s\)$/);
  if (m) return `已 ${m[1]} 秒未上报（应每 ${m[2]} 秒上报一次）`;
  m = reason.match(/^battery ([\d.]+) % ≤ ([\d.]+) %$/);
  if (m) return `电量 ${m[1]} % ≤ ${m[2]} %`;
  if (/^open: /.test(reason)) return "有未办结的告警";
  if (reason === "never heard") return "登记后从未收到它的消息";
  return reason;
}
function when(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(LANG === "zh" ? "zh-CN" : "en-GB", {month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});
}
function ago(iso) {
  if (!iso) return t("never");
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  const text = s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : s < 172800 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86400)} d`;
  return LANG === "zh" ? `${text}${t("ago")}` : `${text} ${t("ago")}`;
}

function renderCounts() {
  const counts = report.counts;
  const gw = report.gateway_counts;
  $("#counts").innerHTML = STATE_ORDER.map((s) => `
    <div class="count ${s}${counts[s] ? "" : " zero"}" data-count="${s}"><b>${counts[s] ?? 0}</b>${esc(msg("devStates", s))}</div>`).join("")
    + `<div class="count gw" data-count="gateways"><b>${gw.online}/${gw.online + gw.offline + gw.unknown}</b>${esc(t("gwCount"))} ${esc(msg("gwStates", "online"))}${gw.offline ? ` · <span class="warn">${gw.offline} ${esc(msg("gwStates", "offline"))}</span>` : ""}</div>`;
}

function gatewayHtml(g) {
  const since = g.since ? `${esc(msg("gwSince", g.state))} ${when(g.since)}` : "";
  return `<div class="gateway ${g.state}" data-gateway="${esc(g.gateway)}" data-state="${g.state}">
    <b>${esc(g.gateway)}</b> ${esc(msg("gwStates", g.state))} <span class="since">${since}</span>
    <div class="sub">${esc(t("lastSeen"))} ${g.last_seen ? `${when(g.last_seen)} (${ago(g.last_seen)})` : t("never")}</div></div>`;
}

function deviceRow(d) {
  const chips = d.conditions.map((c, i) => `<span class="chip ${c}${i === 0 ? " primary" : ""}" data-condition="${c}">${esc(msg("devStates", c))}${c === "under_test" && d.test_mode ? ` · ${esc(msg("testModes", d.test_mode))} #${d.test_window}` : ""}</span>`).join("");
  const expected = d.silent_after_s ? `<div class="sub">${esc(t("every"))} ${d.silent_after_s} ${esc(t("seconds"))}</div>` : "";
  const alarms = d.alarms.map((a) => `<div><span class="badge l${a.level}">${esc(MESSAGES[LANG].levelNames[a.level])}</span> ${esc(LANG === "zh" ? a.title_zh : a.title_en)}</div>`).join("");
  return `<tr data-gateway="${esc(d.gateway)}" data-device="${esc(d.device)}" data-state="${d.state}">
    <td><div>${esc(d.device)}</div><div class="sub">${esc(d.gateway)}</div></td>
    <td><div>${esc(msg("kinds", d.kind) || "")}</div><div class="sub">${esc(d.model)}</div></td>
    <td>${esc(d.home)}</td>
    <td>${chips}<div class="sub">${esc(d.reasons.map(reasonText).join(LANG === "zh" ? "；" : "; "))}</div></td>
    <td class="num"><div>${when(d.last_seen)}</div><div class="sub">${ago(d.last_seen)}</div>${expected}</td>
    <td class="num">${d.battery_pct == null ? "—" : `${d.battery_pct} %`}</td>
    <td class="num">${d.rssi_dbm == null ? "—" : `${d.rssi_dbm} dBm`}</td>
    ${report.alarms_shown ? `<td>${alarms || "—"}</td>` : ""}</tr>`;
}

function render() {
  if (!report) return;
  renderCounts();
  const err = $("#store-error");
  err.hidden = !report.store_error;
  err.textContent = report.store_error ? t("storeError") + report.store_error : "";
  $("#none").hidden = report.buildings.length > 0;
  $("#buildings").innerHTML = report.buildings.map((b) => `
    <section class="building" data-building="${esc(b.building_id)}">
      <h2>${esc(b.building)}<span class="sub">${esc(b.community)} · ${esc(b.grid)}</span></h2>
      <div class="gateways">${b.gateways.map(gatewayHtml).join("")}</div>
      ${b.devices.length ? `<table><thead><tr>
        <th>${t("devCol")}</th><th>${t("modelCol")}</th><th>${t("homeCol")}</th><th>${t("stateCol")}</th>
        <th>${t("seenCol")}</th><th>${t("batteryCol")}</th><th>${t("signalCol")}</th>${report.alarms_shown ? `<th>${t("alarmsCol")}</th>` : ""}
      </tr></thead><tbody>${b.devices.map(deviceRow).join("")}</tbody></table>` : ""}
    </section>`).join("");
}

async function load() {
  let resp;
  try { resp = await fetch("/api/devices/health"); } catch { resp = null; }
  const conn = $("#conn");
  if (resp && resp.status === 401) { location.href = "/login"; return; }
  if (resp && resp.ok) {
    report = await resp.json();
    conn.className = "conn up";
    conn.dataset.t = "devUpdated";
    conn.textContent = `${t("devUpdated")} ${when(report.at)}`;
    render();
  } else {
    conn.className = "conn down";
    conn.dataset.t = "devStale";
    conn.textContent = t("devStale");
  }
}


(async () => {
  const user = await startPage("devices", {onLang: () => { render(); if (report) $("#conn").textContent = `${t("devUpdated")} ${when(report.at)}`; }});
  if (!user) return;
  role = user.role;
  await load();
  setInterval(load, REFRESH_MS);
})();
