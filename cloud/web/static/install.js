// The installer's page (安装调试): pick a gateway, make its one-time claim code (shown big,
// with its countdown), run a walk test and watch every device the installer triggers appear
// with its reading, battery and signal; devices never heard are listed; ending the test shows
// who tested what. Reads GET /api/provision/gateways and polls GET /api/walktests/{id}/live.
// Homes are shown by name only: residents never appear on this page.
Object.assign(MESSAGES.zh, {
  title: "街道值班室 · 安装调试", instTitle: "街道值班室 · 安装调试", instGwLabel: "网关", instCodeLabel: "认领码", instMinutesBad: "测试时长：请填写 1–240 分钟", instLoading: "读取中",
  instUpdated: "已更新", instStale: "无法读取，正在重试…",
  instDenied: "当前账号无权使用安装调试。此页面仅供安装人员和管理员使用。",
  instPick: "选择网关", instGateway: "网关", instClaim: "认领网关",
  instClaimHelp: "在网关上运行下面的命令并输入认领码。认领码只能使用一次，过期后需重新生成；重新认领会更换网关的密码，旧设备的密码随即失效。",
  instMakeCode: "生成认领码", instCodeLeft: "有效期剩余", instCodeExpired: "认领码已过期，请重新生成", instCodeUsed: "认领码已使用，网关已认领",
  instRunOnGateway: "在网关上运行：", instCopy: "复制命令", instCopied: "已复制，粘贴到网关的终端运行", instCopyFailed: "无法自动复制：请长按命令手动复制",
  hints: {call: "按测试键（测试按压，不会呼叫值班室）", smoke: "按住烟感测试键约 3 秒", gas: "用测试气体靠近探头（报警会推送值班室，请先告知）",
    air: "对进气口呼一口气（二氧化碳读数上升），约 1 分钟内出现", water: "用湿布同时碰两个探针", power: "断开再接回干接点"},
  instWalk: "巡检测试", instWalkHelp: "测试期间触发的告警只记为测试，不会推送给值班室；但呼叫、烟感、燃气等生命安全类报警照常推送（真实险情不会被测试屏蔽），请用设备的测试键（测试按压）来测试它们。逐个触发设备，确认每台设备都出现在下表中。",
  instMinutes: "时长（分钟）", instStart: "开始测试", instEnd: "结束测试",
  instDevice: "设备", instKind: "类型", instHome: "房号", instSeen: "状态", instLast: "最近事件",
  instReading: "读数", instBattery: "电量", instSignal: "信号",
  instTriggered: "已触发", instNotYet: "未触发", instNeverSeen: "未触发的设备",
  instAllSeen: "所有设备均已触发", instRunning: "测试进行中", instStartedBy: "开始人", instEndsIn: "剩余",
  instSummary: "测试结果", instEndedBy: "结束人", instEndedAt: "结束于", instStartedAt: "开始于",
  instSeenCount: "已触发", instTestAlarms: "测试告警（未推送值班室）", instNoTestAlarms: "无测试告警",
  instBuilding: "楼栋", instDevices: "台设备", instCredential: "网关凭据", instRevoke: "吊销凭据（设备丢失/被盗）", instRevokeConfirm: "吊销网关 {gateway} 的凭据？它将立即断开且无法再连接，直到用新的认领码重新认领。", instClaimed: "已认领",
  instNotClaimed: "尚未认领", instRevoked: "已吊销", instPending: "有未使用的认领码，有效至",
  instBy: "由", instState: "网关状态", instNoStatus: "未上报", instEvents: "次",
  eventTypes: {press: "按下呼叫", cancel: "取消", alarm: "报警", clear: "解除", test: "测试", fault: "故障", restore: "恢复", battery_low: "低电量", tamper: "防拆", heartbeat: "心跳"},
});
Object.assign(MESSAGES.en, {
  title: "Street duty room · Installation", instTitle: "Street duty room · Installation", instGwLabel: "Gateway", instCodeLabel: "Claim code", instMinutesBad: "Test length: enter 1 to 240 minutes", instLoading: "Loading",
  instUpdated: "Updated", instStale: "Cannot read, retrying…",
  instDenied: "Your role cannot use the installation page. It is for installers and administrators.",
  instPick: "Pick a gateway", instGateway: "Gateway", instClaim: "Claim the gateway",
  instClaimHelp: "Run the command below on the gateway with the claim code. A code works once and expires; claiming again gives the gateway a new password and the old box's password stops working.",
  instMakeCode: "Generate claim code", instCodeLeft: "Expires in", instCodeExpired: "The claim code expired — generate a new one", instCodeUsed: "code used: the gateway is claimed",
  instRunOnGateway: "Run on the gateway:", instCopy: "Copy command", instCopied: "Copied: paste it into the gateway's terminal", instCopyFailed: "Cannot copy by itself: select the command and copy it",
  hints: {call: "press its test button (a test press does not call the duty room)", smoke: "hold the smoke alarm's test button for about 3 s", gas: "hold test gas to the sensor (its alarm reaches the duty room: tell them first)",
    air: "breathe on the air inlet (CO2 rises); shows within about a minute", water: "touch both probes with a wet cloth", power: "open and close the dry contact"},
  instWalk: "Walk test", instWalkHelp: "Alarms during the test are recorded as tests and not sent to the duty room — except life-safety alarms (call buttons, smoke, gas), which always reach the duty room (a real emergency is never muted): test those with the device's test button. Trigger each device and check that it appears below.",
  instMinutes: "Minutes", instStart: "Start walk test", instEnd: "End walk test",
  instDevice: "Device", instKind: "Kind", instHome: "Home", instSeen: "State", instLast: "Last event",
  instReading: "Reading", instBattery: "Battery", instSignal: "Signal",
  instTriggered: "seen", instNotYet: "never seen", instNeverSeen: "Never seen",
  instAllSeen: "Every device has been seen", instRunning: "Walk test running", instStartedBy: "started by", instEndsIn: "ends in",
  instSummary: "Walk test result", instEndedBy: "ended by", instEndedAt: "ended", instStartedAt: "started",
  instSeenCount: "Seen", instTestAlarms: "Test alarms (not sent to the duty room)", instNoTestAlarms: "No test alarms",
  instBuilding: "Building", instDevices: "devices", instCredential: "Credential", instRevoke: "Revoke (box lost or stolen)", instRevokeConfirm: "Revoke the credential of gateway {gateway}? It is cut off at once and cannot connect until it is claimed again with a new code.", instClaimed: "claimed",
  instNotClaimed: "not claimed yet", instRevoked: "revoked", instPending: "an unused claim code, valid until",
  instBy: "by", instState: "Gateway", instNoStatus: "no status yet", instEvents: "events",
  eventTypes: {press: "call pressed", cancel: "cancel", alarm: "alarm", clear: "clear", test: "test", fault: "fault", restore: "restore", battery_low: "low battery", tamper: "tamper", heartbeat: "heartbeat"},
});

const POLL_MS = 2000;
const FIELD_LABELS = {
  zh: {ch4_pct_lel: "甲烷 %LEL", pm25_ugm3: "PM2.5", pm10_ugm3: "PM10", co2_ppm: "CO₂ ppm", hcho_mgm3: "甲醛 mg/m³", tvoc_mgm3: "TVOC mg/m³", temp_c: "温度 °C", rh_pct: "湿度 %", current_a: "电流 A", residual_ma: "剩余电流 mA", press_ms: "按压 ms", offline_s: "离线 s"},
  en: {ch4_pct_lel: "CH₄ %LEL", pm25_ugm3: "PM2.5", pm10_ugm3: "PM10", co2_ppm: "CO₂ ppm", hcho_mgm3: "HCHO mg/m³", tvoc_mgm3: "TVOC mg/m³", temp_c: "Temp °C", rh_pct: "RH %", current_a: "Current A", residual_ma: "Residual mA", press_ms: "Press ms", offline_s: "Offline s"},
};
const $ = (sel) => document.querySelector(sel);
let role = "";
let gateways = [];
let code = null; // {code, gateway, expires_at}
let walk = null; // the live report of the walk test shown
let summary = null; // the last ended walk test's report
let pollTimer = null;

function msg(group, key) { return (MESSAGES[LANG][group] || {})[key] ?? key; }
function when(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(LANG === "zh" ? "zh-CN" : "en-GB", {month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});
}
function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const m = Math.floor(s / 60), h = Math.floor(m / 60);
  return h ? `${h}:${String(m % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}` : `${m}:${String(s % 60).padStart(2, "0")}`;
}
function selected() { return $("#gw-select").value; }
function setConn(ok) {
  const conn = $("#conn");
  conn.className = `conn ${ok ? "up" : "down"}`;
  conn.textContent = ok ? t("instUpdated") : t("instStale");
}
function showError(sel, text) { const el = $(sel); el.textContent = text || ""; el.hidden = !text; }
async function detail(resp) {
  return reasonOf(resp); // in the user's language, naming the field (i18n.js)
}

// ---- gateways ------------------------------------------------------------------------------

async function loadGateways() {
  let resp;
  try { resp = await fetch("/api/provision/gateways"); } catch { setConn(false); return false; }
  if (resp.status === 401) { location.href = "/login"; return false; }
  if (resp.status === 403) { deny(); return false; }
  if (!resp.ok) { setConn(false); return false; }
  gateways = await resp.json();
  setConn(true);
  const select = $("#gw-select");
  const keep = select.value || new URLSearchParams(location.search).get("gateway") || "";
  const options = gateways.map((g) => `<option value="${esc(g.gateway)}">${esc(g.gateway)} · ${esc(g.building)}</option>`).join("");
  if (select.dataset.options !== options) { // rebuilt only when the list changed (an open picker stays open)
    select.innerHTML = options;
    select.dataset.options = options;
    if (gateways.some((g) => g.gateway === keep)) select.value = keep;
  }
  if (code) { // the code shown has been used: the gateway was claimed with it
    const g = gateways.find((x) => x.gateway === code.gateway);
    code.used = Boolean(g && !g.pending_code && g.last_claimed_at && Date.parse(g.last_claimed_at) >= Date.parse(code.expires_at) - code.ttl_s * 1000);
    drawCode();
  }
  renderInfo();
  return true;
}

function deny() {
  $("#denied").hidden = false;
  for (const id of ["#pick", "#claim", "#walk"]) $(id).hidden = true;
  $("#conn").hidden = true;
}

function renderInfo() {
  const g = gateways.find((x) => x.gateway === selected());
  if (!g) { $("#gw-info").innerHTML = ""; return; }
  const cred = g.credential;
  const credText = !cred ? t("instNotClaimed")
    : cred.revoked_at ? `${t("instRevoked")} ${when(cred.revoked_at)}`
      : `${t("instClaimed")} ${when(cred.issued_at)} ${t("instBy")} ${cred.issued_by.replace(/^claim:/, "")}`;
  const state = g.state ? `${g.state === "online" ? t("online") : t("offline")} · ${when(g.last_seen)}` : t("instNoStatus");
  $("#gw-info").innerHTML = `
    <div><b>${esc(t("instBuilding"))}</b> ${esc(g.community)} · ${esc(g.grid)} · ${esc(g.building)} · ${g.devices} ${esc(t("instDevices"))}</div>
    <div data-field="credential" class="${cred && !cred.revoked_at ? "ok" : "muted"}"><b>${esc(t("instCredential"))}</b> ${esc(credText)}
      ${cred && !cred.revoked_at ? `<button id="revoke" class="link">${esc(t("instRevoke"))}</button>` : ""}</div>
    <div data-field="state"><b>${esc(t("instState"))}</b> <span class="gw-state ${esc(g.state || "unknown")}">${esc(state)}</span></div>
    ${g.pending_code ? `<div data-field="pending" class="muted">${esc(t("instPending"))} ${when(g.pending_code.expires_at)} (${esc(g.pending_code.created_by)})</div>` : ""}`;
}

// A lost or stolen box: its broker credential is revoked (a connected session is cut);
// claiming the gateway again with a new code brings it back.
async function revokeCredential() {
  if (!confirm(fmtGateway(t("instRevokeConfirm")))) return;
  showError("#claim-error", "");
  const resp = await fetch(`/api/provision/gateways/${encodeURIComponent(selected())}/revoke`, {method: "POST"});
  if (!resp.ok) showError("#claim-error", await detail(resp));
  await loadGateways();
}
function fmtGateway(text) { return text.replace("{gateway}", selected()); }
$("#gw-info").addEventListener("click", (ev) => { if (ev.target.id === "revoke") revokeCredential(); });

// ---- claim codes ---------------------------------------------------------------------------

async function makeCode() {
  showError("#claim-error", "");
  const resp = await fetch("/api/provision/codes", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({gateway: selected()})});
  if (!resp.ok) { showError("#claim-error", await detail(resp)); return; }
  code = await resp.json();
  sessionStorage.setItem("claimCode", JSON.stringify(code)); // still shown after a reload
  $("#code-box").hidden = false;
  drawCode();
  loadGateways();
}

function drawCode() {
  if (!code) return;
  const left = (Date.parse(code.expires_at) - Date.now()) / 1000;
  const expired = left <= 0 || code.used;
  $("#code").textContent = code.code;
  $("#code").classList.toggle("expired", expired);
  $("#code-box").dataset.gateway = code.gateway;
  $("#code-expiry").textContent = code.used ? `${code.gateway} · ${t("instCodeUsed")}` : expired ? t("instCodeExpired") : `${code.gateway} · ${t("instCodeLeft")} ${clock(left)}`;
  $("#code-expiry").classList.toggle("expired", expired && !code.used);
  $("#code-expiry").classList.toggle("used", Boolean(code.used));
  $("#code").classList.toggle("used", Boolean(code.used));
  $("#code-cmd").textContent = claimCommand(code);
}
// The command as it works when typed: this gateway's id (a code for another is refused), and
// --insecure-http where the page itself came over plain http (a lab; the claim refuses it
// otherwise).
function claimCommand(c) {
  const insecure = location.protocol === "http:" ? " --insecure-http" : "";
  return `sudo /opt/smart-community/.venv/bin/python -m gateway claim --cloud ${location.origin} --gateway ${c.gateway} --code ${c.code}${insecure}`;
}
// The code made in this tab, shown again after a reload while it is valid.
function restoreCode() {
  let saved = null;
  try { saved = JSON.parse(sessionStorage.getItem("claimCode") || "null"); } catch { /* damaged */ }
  if (!saved || Date.parse(saved.expires_at) <= Date.now()) { sessionStorage.removeItem("claimCode"); return; }
  code = saved;
  $("#code-box").hidden = false;
  drawCode();
}
async function copyCommand() {
  const text = $("#code-cmd").textContent, done = $("#copy-done");
  let ok = false;
  try { await navigator.clipboard.writeText(text); ok = true; } catch {
    const range = document.createRange(); range.selectNodeContents($("#code-cmd"));
    getSelection().removeAllRanges(); getSelection().addRange(range);
    try { ok = document.execCommand("copy"); } catch { ok = false; }
  }
  done.textContent = t(ok ? "instCopied" : "instCopyFailed");
  done.hidden = false;
}

// ---- walk tests ----------------------------------------------------------------------------

async function findOpenWalkTest() {
  const resp = await fetch("/api/walktests?open_only=true");
  if (!resp.ok) return null;
  const open = (await resp.json()).filter((w) => w.gateway === selected());
  return open.length ? open[0] : null;
}

async function startTest() {
  showError("#walk-error", "");
  // the length as typed: empty, 0 or beyond the limits is refused here, never replaced
  const typed = $("#minutes").value.trim(), minutes = Number(typed);
  if (!typed || !(minutes >= 1 && minutes <= 240)) { showError("#walk-error", t("instMinutesBad")); $("#minutes").focus(); return; }
  const resp = await fetch("/api/walktests", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({gateway: selected(), minutes})});
  if (!resp.ok) { showError("#walk-error", await detail(resp)); return; }
  const started = await resp.json();
  summary = null;
  $("#summary").hidden = true;
  follow(started.id);
}

function follow(id) {
  clearInterval(pollTimer);
  walk = {window: {id}, devices: [], never_seen: [], alarms: [], seen: 0};
  $("#walk-live").hidden = false;
  $("#walk-start").hidden = true;
  poll();
  pollTimer = setInterval(poll, POLL_MS);
}

async function poll() {
  if (!walk) return;
  let resp;
  try { resp = await fetch(`/api/walktests/${walk.window.id}/live`); } catch { setConn(false); return; }
  if (resp.status === 401) { location.href = "/login"; return; }
  if (!resp.ok) { setConn(false); return; }
  setConn(true);
  walk = await resp.json();
  if (walk.window.ended_at) { finish(walk); return; }
  drawWalk();
}

function reading(d) {
  const labels = FIELD_LABELS[LANG];
  const shown = Object.entries(d.values).filter(([k]) => labels[k]);
  return shown.map(([k, v]) => `<span class="reading" data-field="${esc(k)}">${esc(labels[k])} ${esc(String(Math.round(v * 100) / 100))}</span>`).join(" ");
}

function drawWalk() {
  const w = walk.window;
  const left = (Date.parse(w.ends_at) - Date.now()) / 1000;
  $("#walk-status").textContent = `${t("instRunning")} #${w.id} · ${w.gateway} · ${t("instStartedBy")} ${w.created_by} · ${t("instStartedAt")} ${when(w.starts_at)} · ${t("instEndsIn")} ${clock(left)} · ${t("instSeenCount")} ${walk.seen}/${walk.devices.length}`;
  $("#devices tbody").innerHTML = walk.devices.map((d) => `
    <tr data-device="${esc(d.device)}" class="${d.seen ? "seen" : "unseen"}">
      <td><b>${esc(d.device)}</b><div class="sub">${esc(d.model)}</div></td>
      <td>${esc(d.kind ? msg("kinds", d.kind) : "—")}${!d.seen && d.kind && msg("hints", d.kind) !== d.kind ? `<div class="hint" data-hint>${esc(msg("hints", d.kind))}</div>` : ""}</td>
      <td>${esc(d.home)}</td>
      <td class="seen-cell">${d.seen ? `<span class="tag ok">${esc(t("instTriggered"))}</span>` : `<span class="tag bad">${esc(t("instNotYet"))}</span>`}</td>
      <td>${d.last_type ? `${esc(msg("eventTypes", d.last_type))} · ${when(d.last_at)} <span class="sub">(${d.events} ${esc(t("instEvents"))})</span>` : "—"}</td>
      <td class="readings">${reading(d) || "—"}</td>
      <td class="battery">${d.battery_pct == null ? "—" : `${Math.round(d.battery_pct)} %`}</td>
      <td class="signal">${d.rssi_dbm == null ? "—" : `${Math.round(d.rssi_dbm)} dBm`}</td>
    </tr>`).join("");
  $("#never-seen").innerHTML = walk.never_seen.length
    ? `<b>${esc(t("instNeverSeen"))}:</b> ${walk.never_seen.map((d) => `<span class="tag bad">${esc(d)}</span>`).join(" ")}`
    : `<span class="tag ok">${esc(t("instAllSeen"))}</span>`;
}

async function endTest() {
  if (!walk) return;
  const resp = await fetch(`/api/walktests/${walk.window.id}/end`, {method: "POST"});
  if (!resp.ok && resp.status !== 409) { showError("#walk-error", await detail(resp)); return; }
  await poll();
}

function finish(report) {
  clearInterval(pollTimer);
  pollTimer = null;
  walk = null;
  summary = report;
  $("#walk-live").hidden = true;
  $("#walk-start").hidden = false;
  drawSummary();
}

function drawSummary() {
  if (!summary) return;
  const w = summary.window;
  const seen = summary.devices.filter((d) => d.seen);
  $("#summary").hidden = false;
  $("#summary").innerHTML = `
    <h3>${esc(t("instSummary"))} #${w.id} · ${esc(w.gateway)}</h3>
    <p data-field="who">${esc(t("instStartedBy"))} <b>${esc(w.created_by)}</b> · ${esc(t("instStartedAt"))} ${when(w.starts_at)} · ${esc(t("instEndedBy"))} <b>${esc(w.ended_by || "—")}</b> · ${esc(t("instEndedAt"))} ${when(w.ended_at)}</p>
    <p data-field="seen">${esc(t("instSeenCount"))} ${seen.length}/${summary.devices.length}: ${seen.map((d) => `<span class="tag ok">${esc(d.device)}</span>`).join(" ")}</p>
    ${summary.never_seen.length ? `<p data-field="never">${esc(t("instNeverSeen"))}: ${summary.never_seen.map((d) => `<span class="tag bad">${esc(d)}</span>`).join(" ")}</p>` : ""}
    <p data-field="alarms"><b>${esc(t("instTestAlarms"))}</b>: ${summary.alarms.length ? summary.alarms.map((a) => `${esc(a.device)} ${esc(LANG === "zh" ? a.title_zh : a.title_en)}`).join("；") : esc(t("instNoTestAlarms"))}</p>`;
}

async function pickGateway() {
  renderInfo();
  clearInterval(pollTimer);
  walk = null;
  $("#walk-live").hidden = true;
  $("#walk-start").hidden = false;
  const open = await findOpenWalkTest();
  if (open) follow(open.id);
}

$("#make-code").onclick = makeCode;
$("#copy-cmd").onclick = copyCommand;
$("#start-test").onclick = startTest;
$("#end-test").onclick = endTest;
$("#gw-select").onchange = pickGateway;

(async () => {
  const user = await startPage("install", {onLang: () => { renderInfo(); drawCode(); if (walk && walk.window.ends_at) drawWalk(); drawSummary(); }});
  if (!user) return;
  role = user.role;
  if (!(await loadGateways())) return;
  restoreCode();
  await pickGateway();
  setInterval(drawCode, 1000);
  // the gateways' state: every 3 s while a fresh code waits to be used, else every 12 s
  let ticks = 0;
  setInterval(() => { ticks += 1; if (!walk && ((code && !code.used) || ticks % 4 === 0)) loadGateways(); }, 3000);
})();
