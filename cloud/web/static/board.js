// The live board: a snapshot then updates over server-sent events; reconnects by itself
// (EventSource retries) and every (re)connection starts with a fresh snapshot.
//
// Drawing: updates are coalesced to one render per animation frame, and a render touches
// only the rows whose alarm changed (each row is kept with the alarm object it was drawn
// from), so a thousand open alarms do not mean a thousand rows rebuilt per message.
Object.assign(MESSAGES.zh, {
  budgetLeft: "剩余", overdue: "超时", accept_by: "受理时限", outcome: "办结结果",
  cause: "误报原因", causePick: "请选择误报原因…", causeRequired: "误报必须选择原因",
  otherNeedsNote: "原因选“其他”时，请在说明中写明", causes: {mistouch: "误触", device_fault: "设备故障", cooking: "烹饪油烟", unannounced_test: "测试未报备", other: "其他"},
  verify: "督办核实", verifyNote: "核实说明（如：已电话回访，属实）", awaiting: "近期办结、待督办核实",
  noneAwaiting: "没有待核实的案件", resolvedBy: "办结人", review: "查看并核实", verifiedBy: "核实人",
  resident: "住户信息", residentPrivate: "仅值班人员可见，每次查看均记入审计", age: "年龄", ageUnit: "岁",
  conditions: "需注意", contacts: "紧急联系人", residentPhone: "本人电话", noResident: "档案中没有该户的住户信息", residentDenied: "无权查看住户信息",
  readings: "近一小时读数", noReadings: "近一小时没有读数", readingsFailed: "读数暂时无法获取",
  caseDevice: "设备", model: "型号", gateway: "网关", acceptNow: "受理",
  noteOptional: "说明（可选）", actionsTitle: "处置",
  acceptFirst: "受理后可派单、反馈情况和办结", clearedRow: "设备已恢复", dispatchedTo: "派给", blankText: "请填写内容（不能只有空格）", outcomePick: "请选择办结结果…", outcomeRequired: "请先选择办结结果",
  brokerDown: "告警通道中断",
  windowModes: {walk_test: "巡检测试", maintenance: "维护窗口", drill: "应急演练"}, windowDrill: "仅标记为本次演练的事件按演练处理；其他告警一律按真实告警处理", windowAll: "全部设备", windowUntil: "至",
  windowLeft: "剩余", windowBy: "发起人", windowLive: "期间非生命安全类告警只记为测试；呼叫、烟感、燃气报警照常推送",
  brokerSince: "平台自 {time} 起连接不上消息服务器（已持续 {dur}）。新告警可能延迟送达，恢复后自动补收；现有告警可照常处置。",
  drillTag: "演练", drillCase: "应急演练 #{n}：演练事件，不是真实告警。仅在值班室处置，不通知住户、家属和119。",
});
Object.assign(MESSAGES.en, {
  budgetLeft: "left", overdue: "overdue", accept_by: "Accept by", outcome: "Outcome",
  cause: "Cause", causePick: "Choose the cause…", causeRequired: "A false alarm needs its cause",
  otherNeedsNote: "For “other”, say what it was in the note", causes: {mistouch: "Pressed by mistake", device_fault: "Device fault", cooking: "Cooking fumes", unannounced_test: "Unannounced test", other: "Other"},
  verify: "Verify", verifyNote: "Note (e.g. called back, confirmed)", awaiting: "Recently resolved, awaiting verification",
  noneAwaiting: "Nothing awaits verification", resolvedBy: "Resolved by", review: "Review and verify", verifiedBy: "Verified by",
  resident: "Resident", residentPrivate: "Duty roles only; every view is audited", age: "Age", ageUnit: "",
  conditions: "Take note", contacts: "Emergency contacts", residentPhone: "Phone", noResident: "No resident on file for this home", residentDenied: "Not allowed to view the resident",
  readings: "Readings, last hour", noReadings: "No readings in the last hour", readingsFailed: "Readings are not available now",
  caseDevice: "Device", model: "Model", gateway: "Gateway", acceptNow: "Accept",
  noteOptional: "Note (optional)", actionsTitle: "Actions",
  acceptFirst: "Accept the case to dispatch, give feedback and resolve it", clearedRow: "device back to normal", dispatchedTo: "to", blankText: "Please write something (spaces alone say nothing)", outcomePick: "Choose the outcome…", outcomeRequired: "Choose the outcome first",
  brokerDown: "Alarm feed interrupted",
  windowModes: {walk_test: "Walk test", maintenance: "Maintenance", drill: "Emergency drill"}, windowDrill: "only events marked as this drill's are handled as a drill; every other alarm is real", windowAll: "all devices", windowUntil: "until",
  windowLeft: "left", windowBy: "by", windowLive: "other alarms are recorded as tests; calls, smoke and gas still reach the duty room",
  brokerSince: "The platform has not reached its message broker since {time} (for {dur}). New alarms may be delayed and arrive once it is back; open alarms can be handled as usual.",
  drillTag: "Drill", drillCase: "Emergency drill #{n}: a drill's incident, not a real alarm. Worked in the duty room only; no resident, family or 119 is told.",
});
// The reading an alarm's rule judged, with its unit and precision; an event's alarm (a call,
// a smoke or gas detector's own alarm) has no reading to show.
const RULE_READINGS = {
  methane_high: ["%LEL", 1], pm25_24h: ["µg/m³", 0], pm10_24h: ["µg/m³", 0], co2_1h: ["ppm", 0],
  hcho_1h: ["mg/m³", 2], tvoc_8h: ["mg/m³", 2], battery_low_reading: ["%", 0], heat_rising: ["°C", 1],
};
function readingText(a) {
  const unit = RULE_READINGS[a.rule];
  return unit && a.value != null ? `${a.value.toFixed(unit[1])} ${unit[0]}` : "";
}
function clock24(iso) { return new Date(iso).toLocaleTimeString(LANG === "zh" ? "zh-CN" : "en-GB", {hour12: false}); }
const FIELDS = {
  gas: ["ch4_pct_lel"], air: ["pm25_ugm3", "pm10_ugm3", "co2_ppm", "temp_c"], smoke: ["temp_c", "battery_pct"],
  power: ["current_a", "residual_ma"], water: ["battery_pct"],
};
// Alarms from a home where someone may need help to get out: the resident's profile is shown.
const RESIDENT_KINDS = new Set(["call", "smoke", "gas"]);
const CAUSES = ["mistouch", "device_fault", "cooking", "unannounced_test", "other"];

const alarms = new Map();
const rowCache = new Map(); // id → {alarm, tr}: the alarm object each row was drawn from
const shownReported = new Set();
const outcomes = new Map(); // the outcome an operator picked per alarm, kept across re-renders
let denied = false; // this role may not view alarms (the API said 403)
let ROLE = "";
let renderPending = false;
let broker = {connected: true, down_since: null}; // the cloud's link to the MQTT broker
// For the benchmark (bench/board_load.py): snapshot parse and draw times.
window.boardPerf = {snapshots: []};

const $ = (sel) => document.querySelector(sel);
const now = () => performance.timeOrigin + performance.now();

// a drill's incidents behind every real alarm (as the API orders them)
function sortKey(a) { return [a.mode === "drill" ? 1 : 0, a.level, a.state === "active" ? 0 : 1, Date.parse(a.received_at)]; }
function compare(a, b) {
  const x = sortKey(a), y = sortKey(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return a.id - b.id;
}
function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const m = Math.floor(s / 60), h = Math.floor(m / 60);
  return h ? `${h}:${String(m % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}` : `${m}:${String(s % 60).padStart(2, "0")}`;
}
function since(iso) { return clock((Date.now() - Date.parse(iso)) / 1000); }
// The acceptance budget counting down; once spent, how long it is overdue.
function budgetText(iso) {
  const left = (Date.parse(iso) - Date.now()) / 1000;
  return left > 0 ? [`${t("budgetLeft")} ${clock(Math.ceil(left))}`, false] : [`${t("overdue")} ${clock(-left)}`, true];
}
function budgetCell(a) {
  if (a.state !== "active" || !a.accept_by) return "";
  const [text, over] = budgetText(a.accept_by);
  return `<div class="budget${over ? " overdue" : ""}" data-by="${a.accept_by}">${text}</div>`;
}
// An alarm nobody accepted within its budget has been escalated up the chain: say so.
function escalated(a) {
  return a.state === "active" && a.escalations ? `<div class="sub overdue">${t("escalated")} ×${a.escalations}</div>` : "";
}
function title(a) { return LANG === "zh" ? a.title_zh : a.title_en; }

// A drill's incident (应急演练) is marked on its row and its case: never taken for a real alarm.
function drillTag(a) {
  return a.mode === "drill" ? `<span class="badge drill" title="${esc(t("drillCase").replace("{n}", a.window_id))}">${esc(t("drillTag"))}</span> ` : "";
}
function rowHtml(a) {
  return `<td><span class="badge l${a.level}">${esc(MESSAGES[LANG].levelNames[a.level])}</span></td>
      <td><div class="title">${drillTag(a)}${esc(title(a))}</div>
          <div class="sub">${esc(MESSAGES[LANG].kinds[a.kind] || a.kind)}${readingText(a) ? ` · ${t("value")} ${esc(readingText(a))}` : ""}${a.repeats ? ` · ${t("repeats")} ×${a.repeats}` : ""}</div></td>
      <td><div>${esc(a.building)} ${esc(a.home)}</div>${glanceHtml(a.home_id)}<div class="sub">${esc(a.community)} · ${esc(a.grid)}</div></td>
      <td><div>${esc(a.device)}</div><div class="sub">${esc(a.gateway)}</div></td>
      <td><div class="waited" data-since="${a.received_at}">${since(a.received_at)}</div>${budgetCell(a)}${escalated(a)}</td>
      <td>${esc(t(a.state))}${a.accepted_by ? `<div class="sub">${esc(a.accepted_by)}</div>` : ""}${a.cleared_at ? `<div class="sub cleared">${esc(t("clearedRow"))} ${clock24(a.cleared_at)}</div>` : ""}</td>
      <td><div class="actions">
        ${a.state === "active" ? `<button class="accept" data-act="accept">${t("accept")}</button>` : resolveControls(a)}
        <button class="link" data-act="open">${t("timeline")}</button>
      </div></td>`;
}
// 办结 only for an accepted case, and never with an outcome nobody chose: the select starts
// on "choose…" (the API refuses to resolve an unaccepted case too).
function outcomeOptions(chosen) {
  return `<option value="">${esc(t("outcomePick"))}</option>${["handled", "false_alarm", "test"].map((o) => `<option value="${o}"${chosen === o ? " selected" : ""}>${t(o)}</option>`).join("")}`;
}
function resolveControls(a) {
  return `<select data-outcome required aria-label="${esc(t("outcome"))}">${outcomeOptions(outcomes.get(a.id))}</select>
        <button class="resolve" data-act="resolve">${t("resolve")}</button>`;
}

// The clocks of the rows on screen tick; the others are brought up to date when scrolled to.
const onScreen = new Set();
const visibility = new IntersectionObserver((entries) => {
  for (const e of entries) {
    if (e.isIntersecting) { onScreen.add(e.target); tickRow(e.target); } else onScreen.delete(e.target);
  }
});

function rowFor(a) {
  const cached = rowCache.get(a.id);
  if (cached && cached.alarm === a) return cached.tr;
  const tr = cached ? cached.tr : document.createElement("tr");
  if (!cached) visibility.observe(tr);
  tr.className = `level-${a.level} state-${a.state}${a.mode === "drill" ? " drill" : ""}`;
  tr.dataset.id = a.id; tr.dataset.level = a.level; tr.dataset.state = a.state;
  tr.innerHTML = rowHtml(a);
  rowCache.set(a.id, {alarm: a, tr});
  return tr;
}

function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  // a background tab gets no animation frames: draw anyway (the alert state must be right)
  const later = document.visibilityState === "visible" ? requestAnimationFrame : (fn) => setTimeout(fn, 0);
  later(() => { renderPending = false; render(); });
}

function render() {
  const rows = [...alarms.values()].filter((a) => a.state !== "resolved").sort(compare);
  const body = $("#board tbody");
  const keep = new Set(rows.map((a) => a.id));
  for (const [id, {tr}] of rowCache) if (!keep.has(id)) forget(id, tr);
  let node = body.firstChild;
  for (const a of rows) {
    const tr = rowFor(a);
    if (tr === node) node = node.nextSibling;
    else body.insertBefore(tr, node);
  }
  $("#empty").hidden = denied || rows.length > 0;
  // "shown to an operator" only when the page is actually on screen (not a background tab);
  // one request for all the rows drawn now (a board opening on a thousand alarms)
  const fresh = [];
  for (const a of document.visibilityState === "visible" ? rows : []) {
    if (!a.shown_at && !shownReported.has(a.id)) { shownReported.add(a.id); fresh.push(a.id); }
  }
  for (let i = 0; i < fresh.length; i += 5000) reportShown(fresh.slice(i, i + 5000));
  updateAlerting();
}
// A report that did not arrive (network, server restarting) is forgotten, so the next render
// sends it again.
async function reportShown(ids) {
  let ok = false;
  try {
    const resp = await fetch("/api/alarms/shown", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({ids})});
    ok = resp.ok;
  } catch { /* network down */ }
  if (!ok) { for (const id of ids) shownReported.delete(id); setTimeout(scheduleRender, 3000); }
}

function forget(id, tr) { visibility.unobserve(tr); onScreen.delete(tr); tr.remove(); rowCache.delete(id); }
function redrawAll() { rowCache.forEach(({tr}, id) => forget(id, tr)); render(); }

// ---- the alert (alert.js): the unaccepted level-I alarms beep and flash the title ----
function updateAlerting() {
  setWaiting([...alarms.values()].filter((a) => a.level === 1 && a.state === "active").map((a) => a.id));
}
function tickBudget(el) {
  const [text, over] = budgetText(el.dataset.by);
  if (el.textContent !== text) el.textContent = text;
  if (el.classList.contains("overdue") !== over) el.classList.toggle("overdue", over);
}
function tickRow(tr) {
  const waited = tr.querySelector(".waited");
  if (waited) waited.textContent = since(waited.dataset.since);
  const budget = tr.querySelector(".budget");
  if (budget) tickBudget(budget);
}
// Only the rows on screen: a thousand clocks redrawn every second would keep the page busy.
function tick() {
  onScreen.forEach(tickRow);
  document.querySelectorAll("#windows .left").forEach((el) => { el.textContent = clock((Date.parse(el.dataset.ends) - Date.now()) / 1000); });
  const outage = $("#broker .dur");
  if (outage) outage.textContent = since(outage.dataset.since);
  document.querySelectorAll("#case .budget").forEach(tickBudget);
}
setInterval(tick, 1000);

function setConn(up) {
  const el = $("#conn");
  el.className = `conn ${up ? "up" : "down"}`; el.dataset.t = up ? "connected" : "reconnecting"; el.textContent = t(el.dataset.t);
}

// The banner while the cloud cannot reach its broker: since when, for how long, what it means.
function drawBroker() {
  const el = $("#broker");
  const down = !denied && !broker.connected && broker.down_since;
  el.hidden = !down;
  if (!down) { el.textContent = ""; return; }
  const at = new Date(broker.down_since).toLocaleString(LANG === "zh" ? "zh-CN" : "en-GB", {hourCycle: "h23"});
  el.dataset.since = broker.down_since;
  el.innerHTML = `<strong>${esc(t("brokerDown"))}</strong>${esc(t("brokerSince"))
    .replace("{time}", `<time datetime="${esc(broker.down_since)}">${esc(at)}</time>`)
    .replace("{dur}", `<span class="dur" data-since="${esc(broker.down_since)}">${since(broker.down_since)}</span>`)}`;
}

// ---- walk tests and maintenance windows running now (GET /api/windows/now) ----------------
let windows = [];
async function loadWindows() {
  let resp;
  try { resp = await fetch("/api/windows/now"); } catch { return; }
  if (!resp.ok) return;
  windows = await resp.json();
  drawWindows();
}
function drawWindows() {
  const el = $("#windows");
  el.hidden = denied || !windows.length;
  el.innerHTML = windows.map((w) => `<li data-window="${w.id}"><strong>${esc(MESSAGES[LANG].windowModes[w.mode] || w.mode)} #${w.id}</strong>${[
    ` · ${esc(t("gateway"))} ${esc(w.gateway)}（${w.devices.length ? esc(w.devices.join("、")) : esc(t("windowAll"))}）`,
    ` · ${esc(t("windowBy"))} ${esc(w.created_by)} · ${esc(t("windowUntil"))} ${esc(clock24(w.ends_at))}`,
    `（${esc(t("windowLeft"))} <span class="left" data-ends="${esc(w.ends_at)}">${clock((Date.parse(w.ends_at) - Date.now()) / 1000)}</span>）`,
    ` · ${esc(t(w.mode === "drill" ? "windowDrill" : "windowLive"))}`].join("")}</li>`).join("");
}
setInterval(loadWindows, 30000);

function connect() {
  const source = new EventSource("/api/alarms/stream");
  voiceListen(source); // one-key voice (voice.js): calls come on the same stream
  source.addEventListener("open", () => setConn(true));
  source.addEventListener("error", async () => {
    setConn(false);
    if (source.readyState === EventSource.CLOSED) {
      // the server refused the stream (not a network blip): find out why before retrying
      source.close();
      if (await mayView()) setTimeout(connect, 2000);
    }
  });
  source.addEventListener("snapshot", (ev) => {
    const t0 = now();
    const list = JSON.parse(ev.data);
    const t1 = now();
    alarms.clear();
    for (const a of list) alarms.set(a.id, a);
    render();
    window.boardPerf.snapshots.push({rows: list.length, parse_ms: t1 - t0, draw_ms: now() - t1});
    refreshAwaiting();
    loadWindows();
  });
  source.addEventListener("broker", (ev) => {
    const state = JSON.parse(ev.data);
    broker = {connected: state.connected, down_since: state.down_since};
    drawBroker();
  });
  source.addEventListener("alarm", (ev) => {
    const a = JSON.parse(ev.data).alarm;
    alarms.set(a.id, a);
    if (glanceMissing(a.home_id)) readGlance().then((changed) => { if (changed) redrawAll(); });
    updateAlerting();
    scheduleRender();
    if (a.state === "resolved") { alarms.delete(a.id); refreshAwaiting(); }
    if ($("#case").open && Number($("#case").dataset.id) === a.id) openCase(a.id, {}, true);
  });
}

async function post(url, body) {
  const init = {method: "POST"};
  if (body !== undefined) { init.headers = {"Content-Type": "application/json"}; init.body = JSON.stringify(body); }
  let resp;
  try { resp = await fetch(url, init); } catch { alert(t("reconnecting")); return null; }
  if (!resp.ok) {
    alert(`${resp.status}: ${await reasonOf(resp)}`); // in the user's language (i18n.js)
    return null;
  }
  const a = await resp.json();
  if (a.state === "resolved") { alarms.delete(a.id); outcomes.delete(a.id); } else alarms.set(a.id, a);
  scheduleRender();
  return a;
}

async function act(id, action, row) {
  if (action === "open") return openCase(id);
  if (action === "accept") { const a = await post(`/api/alarms/${id}/accept`); if (a) voiceAccepted(id); return a; }
  if (action === "resolve") {
    const select = row.querySelector("[data-outcome]");
    const outcome = select.value;
    if (!outcome) { // nothing chosen: say so at the select, close nothing
      select.setAttribute("aria-invalid", "true");
      select.setCustomValidity(t("outcomeRequired")); select.reportValidity(); select.focus();
      return;
    }
    // a false alarm needs its cause: the case opens at the short form for it
    if (outcome === "false_alarm") return openCase(id, {outcome});
    return post(`/api/alarms/${id}/resolve`, {outcome, note: ""});
  }
}

// ---- the case ------------------------------------------------------------------------------

let caseExtras = null; // {id, resident, readings}: read once per opening of the dialog

function fmt(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(LANG === "zh" ? "zh-CN" : "en-GB", {hour12: false});
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const el = document.createElement("script");
    el.src = src; el.onload = resolve; el.onerror = reject;
    document.head.append(el);
  });
}
// The chart code (uPlot and the trends page's drawSeries) is loaded when a case is first
// opened, not with the board.
let chartReady = null;
function loadChart() {
  if (!chartReady) {
    const css = document.createElement("link");
    css.rel = "stylesheet"; css.href = "/static/vendor/uPlot.min.css";
    document.head.append(css);
    chartReady = loadScript("/static/vendor/uPlot.iife.min.js").then(() => loadScript("/static/trends-chart.js"));
  }
  return chartReady;
}

// The device's readings of the last hour (1-minute means, with the limits of the rules in
// force): the first of its kind's fields that has any.
async function readingsOf(alarm) {
  for (const field of FIELDS[alarm.kind] || []) {
    const q = new URLSearchParams({gateway: alarm.gateway, device: alarm.device, field, range: "1h"});
    const resp = await fetch(`/api/trends?${q}`);
    if (!resp.ok) return {error: true};
    const trend = await resp.json();
    if (trend.series.some((line) => line.values.some((v) => v != null))) return {trend};
  }
  return {trend: null};
}

async function residentOf(alarm) {
  if (!RESIDENT_KINDS.has(alarm.kind) || !alarm.home_id) return null;
  const resp = await fetch(`/api/alarms/${alarm.id}/resident`);
  if (resp.status === 403) return {denied: true};
  if (!resp.ok) return {residents: []};
  return resp.json();
}

function residentHtml(profile) {
  if (!profile) return "";
  let inner;
  if (profile.denied) inner = `<p class="sub">${t("residentDenied")}</p>`;
  else if (!profile.residents.length) inner = `<p class="sub">${t("noResident")}</p>`;
  else inner = profile.residents.map((r) => `<div class="person">
      <div class="who"><strong>${esc(r.name)}</strong>${r.age != null ? ` · ${t("age")} ${r.age}${t("ageUnit")}` : ""}${r.flags.map((f) => ` <span class="flag" data-flag="${esc(f)}">${esc(residentFlagText(f))}</span>`).join("")}</div>
      ${r.phone ? `<div class="phone">${t("residentPhone")}${t("colon")}<a href="tel:${esc(r.phone.replace(/\s/g, ""))}">${esc(r.phone)}</a></div>` : ""}
      ${r.conditions ? `<div class="conditions">${t("conditions")}${t("colon")}${esc(r.conditions)}</div>` : ""}
      ${r.contacts.length ? `<div>${t("contacts")}${t("colon")}${r.contacts.map((c) => `<span class="contact">${esc(c.name)}${c.relation ? `（${esc(c.relation)}）` : ""} <a href="tel:${esc(c.phone.replace(/\s/g, ""))}">${esc(c.phone)}</a></span>`).join("、")}</div>` : ""}
    </div>`).join("");
  return `<section id="resident" class="panel"><h3>${t("resident")}</h3><p class="sub private">${t("residentPrivate")}</p>${inner}</section>`;
}

async function drawReadings(el, readings) {
  if (readings.error) { el.innerHTML = `<p class="sub">${t("readingsFailed")}</p>`; return; }
  const trend = readings.trend;
  if (!trend) { el.innerHTML = `<p class="sub">${t("noReadings")}</p>`; return; }
  await loadChart();
  if (!el.isConnected) return;
  el.innerHTML = `<div class="sub">${esc(LANG === "zh" ? trend.name_zh : trend.name_en)} (${esc(trend.unit)})</div><div class="chart"></div>`;
  const chart = el.querySelector(".chart");
  drawSeries(chart, trend, {height: 170, width: Math.max(300, el.clientWidth || 420), lang: LANG});
  el.dataset.points = String(trend.series[0].values.filter((v) => v != null).length);
}

// The case's steps in the order they happened (the ones still to come after, in the usual
// order), each with who or what: whom it was dispatched to, the feedback, the outcome and its
// note, the supervisor's note.
function timelineHtml(alarm, history = []) {
  const steps = ["device_ts", "received_at", "stored_at", "pushed_at", "shown_at", "accepted_at",
    "dispatched_at", "feedback_at", "resolved_at", "verified_at"];
  for (const extra of ["escalated_at", "cleared_at"]) if (alarm[extra]) steps.splice(steps.indexOf("resolved_at"), 0, extra);
  const done = steps.filter((s) => alarm[s]).sort((x, y) => Date.parse(alarm[x]) - Date.parse(alarm[y]));
  const ordered = [...done, ...steps.filter((s) => !alarm[s])];
  const last = (action) => [...history].reverse().find((h) => h.action === action);
  const said = {
    accepted_at: alarm.accepted_by ? ` · ${esc(alarm.accepted_by)}` : "",
    dispatched_at: alarm.dispatched_to ? ` · ${esc(t("dispatchedTo"))} ${esc(alarm.dispatched_to)}` : "",
    feedback_at: last("feedback") ? ` · ${esc(last("feedback").detail)}` : "",
    escalated_at: alarm.escalations ? ` ×${alarm.escalations}` : "",
    resolved_at: alarm.outcome ? ` · ${esc(t(alarm.outcome))}${alarm.cause ? `（${esc(MESSAGES[LANG].causes[alarm.cause] || alarm.cause)}）` : ""}${alarm.resolved_by ? ` · ${esc(alarm.resolved_by)}` : ""}${alarm.note ? `${t("colon")}${esc(alarm.note)}` : ""}` : "",
    verified_at: alarm.verified_by ? ` · ${esc(alarm.verified_by)}${last("verified") && last("verified").detail ? `${t("colon")}${esc(last("verified").detail)}` : ""}` : "",
  };
  return `<ol class="timeline">${ordered.map((s) => `<li data-step="${s}">${t(s)}${t("colon")}${fmt(alarm[s])}${said[s] || ""}</li>`).join("")}</ol>`;
}

function actionsHtml(alarm, preset) {
  const open = alarm.state !== "resolved";
  const supervisor = ROLE === "supervisor" || ROLE === "admin";
  let html = "";
  if (alarm.state === "active") html += `<button id="case-accept" class="accept">${t("acceptNow")}</button>`;
  if (alarm.state === "accepted") {
    const outcome = preset.outcome || "";
    // dispatch, feedback and 办结 follow acceptance (the API refuses them before)
    html += `<form id="dispatch" class="case-form"><h3>${t("dispatch")}</h3>
      <input name="to" required maxlength="100" placeholder="${esc(t("dispatchTo"))}">
      <input name="note" maxlength="1000" placeholder="${esc(t("note"))}"><button>${t("send")}</button></form>
    <form id="feedback" class="case-form"><h3>${t("feedback")}</h3>
      <input name="note" required maxlength="2000" placeholder="${esc(t("note"))}"><button>${t("send")}</button></form>`;
    html += `<form id="resolve" class="case-form" novalidate><h3>${t("resolve")}</h3>
      <select name="outcome" aria-label="${esc(t("outcome"))}">${outcomeOptions(outcome)}</select>
      <select name="cause" aria-label="${esc(t("cause"))}"${outcome === "false_alarm" ? "" : " hidden"}><option value="">${t("causePick")}</option>${CAUSES.map((c) => `<option value="${c}">${esc(MESSAGES[LANG].causes[c])}</option>`).join("")}</select>
      <input name="note" maxlength="1000" placeholder="${esc(t("noteOptional"))}"><button>${t("resolve")}</button>
      <p class="form-error" role="alert" hidden></p></form>`;
    html += hushHtml(alarm); // case-hush.js
  } else if (open) {
    html += `<p class="sub" id="accept-first">${t("acceptFirst")}</p>`;
  } else if (supervisor && !alarm.verified_at) {
    html += `<form id="verify" class="case-form"><h3>${t("verify")}</h3>
      <input name="note" maxlength="1000" placeholder="${esc(t("verifyNote"))}"><button>${t("verify")}</button></form>`;
  }
  return html ? `<section class="panel actions-panel"><h3 class="visually-hidden">${t("actionsTitle")}</h3>${html}</section>` : "";
}

function infoHtml(alarm) {
  const budget = alarm.state === "active" && alarm.accept_by ? (() => { const [text, over] = budgetText(alarm.accept_by); return `<div>${t("accept_by")}${t("colon")}${fmt(alarm.accept_by)} <span class="budget${over ? " overdue" : ""}" data-by="${alarm.accept_by}">${text}</span></div>`; })() : "";
  const drill = alarm.mode === "drill" ? `<p class="drill-note" role="note">${drillTag(alarm)}${esc(t("drillCase").replace("{n}", alarm.window_id))}</p>` : "";
  return `${drill}<div>${esc(alarm.community)} · ${esc(alarm.grid)} · <strong>${esc(t(alarm.state))}</strong></div>${budget}
    <div>${t("caseDevice")}${t("colon")}${esc(alarm.device)} · ${t("model")} ${esc(alarm.model)} · ${t("gateway")} ${esc(alarm.gateway)}</div>`;
}
function historyHtml(history) {
  return history.map((h) => `<li>${fmt(h.at)} ${esc(h.actor === "system" ? t("system") : h.actor === "resident" ? t("byResident") : h.actor)} ${esc(MESSAGES[LANG].logActions[h.action] || h.action)} ${esc(logDetail(h))}</li>`).join("");
}

// Opens (or redraws) the case dialog. `live`: an update pushed while it is open — the forms
// are left alone (someone may be typing in them) unless the case changed state.
async function openCase(id, preset = {}, live = false) {
  const resp = await fetch(`/api/alarms/${id}`);
  if (!resp.ok) return;
  const {alarm, history} = await resp.json();
  const dialog = $("#case");
  // a refresh of an open case: if the operator closed it (or opened another) while this was
  // being read, it stays closed
  if (live && (!dialog.open || Number(dialog.dataset.id) !== id)) return;
  const stateKey = `${alarm.state}/${alarm.verified_at ? 1 : 0}`;
  if (live && dialog.open && Number(dialog.dataset.id) === id && dialog.dataset.state === stateKey) {
    $("#case-info").innerHTML = infoHtml(alarm);
    $("#case-timeline").innerHTML = timelineHtml(alarm, history);
    $("#case-history").innerHTML = historyHtml(history);
    return;
  }
  if (!caseExtras || caseExtras.id !== id || !dialog.open) {
    caseExtras = {id, resident: residentOf(alarm), readings: readingsOf(alarm)};
  }
  dialog.dataset.id = id;
  dialog.dataset.state = stateKey;
  $("#case-body").innerHTML = `<h2><span class="badge l${alarm.level}">${esc(MESSAGES[LANG].levelNames[alarm.level])}</span> ${esc(title(alarm))} · ${esc(alarm.building)} ${esc(alarm.home)}</h2>
    <div class="case-grid">
      <div>
        <section class="panel" id="case-info">${infoHtml(alarm)}</section>
        <div id="case-actions">${actionsHtml(alarm, preset)}</div>
        <section class="panel"><h3>${t("timeline")}</h3><div id="case-timeline">${timelineHtml(alarm, history)}</div></section>
      </div>
      <div>
        <div id="resident-slot"></div>
        ${FIELDS[alarm.kind] ? `<section class="panel"><h3>${t("readings")}</h3><div id="readings"></div></section>` : ""}
        <section class="panel"><h3>${t("history")}</h3><ol class="history" id="case-history">${historyHtml(history)}</ol></section>
      </div>
    </div>`;
  wireCase(id);
  if (!dialog.open) dialog.showModal();
  voiceCase(id);
  const extras = caseExtras;
  extras.resident.then((profile) => { if (caseExtras === extras && $("#resident-slot")) $("#resident-slot").innerHTML = residentHtml(profile); });
  extras.readings.then((readings) => { if (caseExtras === extras && $("#readings")) drawReadings($("#readings"), readings); });
}

function wireCase(id) {
  const accept = $("#case-accept");
  // redrawn only if the live update has not done it yet: a second redraw would wipe what the
  // operator has begun to type in the forms acceptance opened
  if (accept) accept.onclick = async () => { accept.disabled = true; if (await post(`/api/alarms/${id}/accept`)) { openCase(id, {}, true); voiceAccepted(id); } else accept.disabled = false; };
  // a field refused for its blanks is fine again once typed in
  for (const input of document.querySelectorAll("#case-body input[required]")) input.oninput = () => input.setCustomValidity("");
  const resolve = $("#resolve");
  if (resolve) {
    const outcome = resolve.elements.outcome, cause = resolve.elements.cause;
    outcome.onchange = () => { cause.hidden = outcome.value !== "false_alarm"; };
  }
  wireHush(id); // case-hush.js
  for (const form of document.querySelectorAll("#case-body form:not(#hush)")) {
    form.onsubmit = async (ev) => {
      ev.preventDefault();
      // a required field of spaces only says nothing (the API refuses it too)
      const blank = [...form.querySelectorAll("input[required]")].find((input) => !input.value.trim());
      if (blank) { blank.setCustomValidity(t("blankText")); blank.reportValidity(); blank.focus(); return; }
      const body = Object.fromEntries(new FormData(form));
      if (form.id === "resolve") {
        const error = form.querySelector(".form-error");
        const problem = !body.outcome ? "outcomeRequired" : body.outcome !== "false_alarm" ? "" : !body.cause ? "causeRequired" : body.cause === "other" && !body.note.trim() ? "otherNeedsNote" : "";
        error.hidden = !problem; error.textContent = problem ? t(problem) : "";
        if (problem) { (problem === "outcomeRequired" ? form.elements.outcome : body.cause ? form.elements.note : form.elements.cause).focus(); return; }
        if (body.outcome !== "false_alarm") delete body.cause;
      }
      const button = form.querySelector("button");
      button.disabled = true;
      const a = await post(`/api/alarms/${id}/${form.id}`, body);
      button.disabled = false;
      if (!a) return;
      if (form.id === "resolve" || form.id === "verify") refreshAwaiting();
      // a redraw only where the case changed state: a dispatch or feedback leaves the other
      // forms (and whatever is being typed in them) alone
      form.reset();
      openCase(id, {}, true);
    };
  }
}

// ---- supervisors: resolved cases awaiting verification (督办) --------------------------------

let awaitingTimer = null;
function refreshAwaiting() {
  if (ROLE !== "supervisor" && ROLE !== "admin") return;
  clearTimeout(awaitingTimer);
  awaitingTimer = setTimeout(loadAwaiting, 300);
}
let awaitingList = [];
async function loadAwaiting() {
  const resp = await fetch("/api/alarms/unverified");
  if (!resp.ok) return;
  awaitingList = await resp.json();
  drawAwaiting();
}
function drawAwaiting() {
  const section = $("#awaiting");
  section.hidden = !(ROLE === "supervisor" || ROLE === "admin") || denied;
  $("#awaiting-empty").hidden = awaitingList.length > 0;
  $("#awaiting tbody").innerHTML = awaitingList.map((a) => `<tr data-id="${a.id}">
      <td><span class="badge l${a.level}">${esc(MESSAGES[LANG].levelNames[a.level])}</span></td>
      <td><div class="title">${drillTag(a)}${esc(title(a))}</div><div class="sub">${esc(a.building)} ${esc(a.home)}</div></td>
      <td>${esc(t(a.outcome))}${a.cause ? `<div class="sub">${esc(MESSAGES[LANG].causes[a.cause] || a.cause)}</div>` : ""}</td>
      <td>${fmt(a.resolved_at)}<div class="sub">${t("resolvedBy")} ${esc(a.resolved_by)}</div></td>
      <td><button data-review>${t("review")}</button></td></tr>`).join("");
}
$("#awaiting").addEventListener("click", (ev) => {
  const btn = ev.target.closest("button[data-review]");
  if (btn) openCase(Number(btn.closest("tr").dataset.id));
});

$("#board").addEventListener("change", (ev) => {
  if (!ev.target.matches("select[data-outcome]")) return;
  ev.target.removeAttribute("aria-invalid"); ev.target.setCustomValidity("");
  outcomes.set(Number(ev.target.closest("tr").dataset.id), ev.target.value);
});
$("#board").addEventListener("click", (ev) => {
  const btn = ev.target.closest("button[data-act]");
  if (!btn) return;
  const row = btn.closest("tr");
  if (btn.dataset.act !== "open") btn.disabled = true; // a double click must not act twice
  Promise.resolve(act(Number(row.dataset.id), btn.dataset.act, row)).finally(() => { btn.disabled = false; });
});
document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") render(); });
$("#case-close").onclick = () => $("#case").close();
$("#case").addEventListener("close", () => { caseExtras = null; });
// After a language switch (the shared header, i18n.js startPage, relabels the rest).
function relabel() {
  drawAlert(); setConn($("#conn").classList.contains("up")); redrawAll(); drawAwaiting(); drawBroker(); drawWindows();
  // a refresh that redraws the whole case in the new language (no state matches the empty one)
  if ($("#case").open) { $("#case").dataset.state = ""; openCase(Number($("#case").dataset.id), {}, true); }
}

// Whether this session may watch alarms: a lapsed session goes back to the sign-in page, a
// role without duty rights (e.g. an installer) gets a plain message instead of an empty board
// that would look like "no alarms".
async function mayView() {
  let resp;
  try { resp = await fetch("/api/alarms?limit=1"); } catch { return true; } // network down: keep retrying
  if (resp.status === 401) { location.href = "/login"; return false; }
  if (resp.status === 403) {
    denied = true;
    $("#board").hidden = true; $("#empty").hidden = true; $("#sound").hidden = true; $("#conn").hidden = true;
    $("#awaiting").hidden = true;
    $("#denied").hidden = false;
    return false;
  }
  return true;
}

(async () => {
  const user = await startPage("board", {onLang: relabel});
  if (!user) return;
  ROLE = user.role;
  startAlert(ROLE);
  if (await mayView()) { drawAwaiting(); connect(); readGlance().then((changed) => { if (changed) redrawAll(); }); }
})();
