// Shared by the ledger (台账) and report pages: their strings, the filter form (kept in the
// page's address, so a reload or a copied link shows the same cases), Beijing-time
// formatting, and the page header (user, language, sign-out). Loaded after i18n.js.
Object.assign(MESSAGES.zh, {
  ledgerTitle: "街道值班室 · 台账", reportTitle: "街道值班室 · 统计报表",
  dateFrom: "起始日期", dateTo: "截止日期（含当天）", community: "社区", kind: "类型", outcome: "处置结果",
  includeTests: "含巡检测试/维护/演练记录", all: "全部", search: "查询", reset: "重置",
  exportCsv: "导出 CSV", exportXlsx: "导出 Excel", caseNo: "编号", dispatchedTo: "派给",
  totalCases: "共 {n} 条（北京时间）", exportTooMany: "共 {n} 条，超过一次导出的上限 {max} 条：请缩小筛选范围（例如日期）", pageInfo: "第 {p} / {n} 页", prev: "上一页", next: "下一页",
  noCases: "没有符合条件的案件", loading: "加载中…",
  ledgerDenied: "当前账号无权查看台账和报表。仅供值班员、督导和管理员使用。",
  outcomeNames: {handled: "已处置", false_alarm: "误报", test: "测试", cleared: "自动解除"},
  stateNames: {active: "待受理", accepted: "已受理", resolved: "已办结"},
  causeNames: {mistouch: "误触", device_fault: "设备故障", cooking: "烹饪油烟", unannounced_test: "测试未报备", other: "其他", unknown: "未填写"},
  modeNames: {live: "值班", walk_test: "巡检测试", maintenance: "维护", drill: "应急演练"},
  tta: "受理用时", ttr: "办结用时", budgetS: "受理时限", withinBudget: "时限内受理", yes: "是", no: "否",
  feedbackNotes: "情况反馈", noteCause: "处置说明", escalations: "升级次数", verifiedBy: "核实人",
  units: {h: "小时", m: "分", s: "秒"}, badFilter: "筛选条件有误：",
  verifiedFilter: "督办核实", verifiedYes: "已核实", verifiedNo: "未核实",
  logActions: {...MESSAGES.zh.logActions, dispatched: "派单", feedback: "情况反馈", verified: "督办核实", cleared: "设备自动解除", escalate: "升级", notify: "通知", remind: "提醒", device_cleared: "设备恢复"},
});
Object.assign(MESSAGES.en, {
  ledgerTitle: "Street duty room · Case ledger", reportTitle: "Street duty room · Report",
  dateFrom: "From", dateTo: "To (inclusive)", community: "Community", kind: "Kind", outcome: "Outcome",
  includeTests: "Include walk tests / maintenance / drills", all: "All", search: "Search", reset: "Reset",
  exportCsv: "Export CSV", exportXlsx: "Export Excel", caseNo: "No.", dispatchedTo: "Dispatched to",
  totalCases: "{n} cases (Beijing time)", exportTooMany: "{n} cases, over the limit of {max} for one export: narrow the filter (dates, for example)", pageInfo: "Page {p} of {n}", prev: "Previous", next: "Next",
  noCases: "No cases match", loading: "Loading…",
  ledgerDenied: "Your role cannot view the ledger or the report. They are for duty operators, supervisors and administrators.",
  outcomeNames: {handled: "Handled", false_alarm: "False alarm", test: "Test", cleared: "Cleared"},
  stateNames: {active: "Not accepted", accepted: "Accepted", resolved: "Resolved"},
  causeNames: {mistouch: "Pressed by mistake", device_fault: "Device fault", cooking: "Cooking fumes", unannounced_test: "Unannounced test", other: "Other", unknown: "Not given"},
  modeNames: {live: "Live", walk_test: "Walk test", maintenance: "Maintenance", drill: "Drill"},
  tta: "Time to accept", ttr: "Time to resolve", budgetS: "Acceptance budget", withinBudget: "Accepted within budget", yes: "yes", no: "no",
  feedbackNotes: "Feedback", noteCause: "Note", escalations: "Escalations", verifiedBy: "Verified by",
  units: {h: " h ", m: " min ", s: " s"}, badFilter: "Bad filter: ",
  verifiedFilter: "Verified", verifiedYes: "verified", verifiedNo: "not verified",
  logActions: {...MESSAGES.en.logActions, dispatched: "dispatched", feedback: "feedback", verified: "verified", cleared: "cleared by the device", escalate: "escalated", notify: "notified", remind: "reminded", device_cleared: "device restored"},
});

const $ = (sel) => document.querySelector(sel);
const TZ = "Asia/Shanghai";
// Escapes for text and for attribute values (quotes too).
function words(key) { return MESSAGES[LANG][key]; }
function fill(template, values) { return template.replace(/\{(\w+)\}/g, (_, k) => values[k]); }
// A time as the duty room reads it: Beijing time, whatever the PC's own zone.
function fmtTime(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(LANG === "zh" ? "zh-CN" : "en-GB", {timeZone: TZ, hour12: false,
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit"});
}
function fmtDur(seconds) {
  if (seconds == null) return "—";
  const u = words("units");
  if (seconds < 10 && seconds % 1) return `${seconds.toFixed(1)}${u.s}`;
  const all = Math.round(seconds), h = Math.floor(all / 3600), m = Math.floor((all % 3600) / 60), s = all % 60;
  const parts = h ? [[h, u.h], [m, u.m]] : m ? [[m, u.m], [s, u.s]] : [[s, u.s]];
  return parts.filter(([n], i) => n || i === 0).map(([n, unit]) => `${n}${unit}`).join("").trim();
}
function levelName(n) { return words("levelNames")[n] || n; }
function kindName(k) { return words("kinds")[k] || k; }

// ---- the filter form --------------------------------------------------------------------------
const FILTER_FIELDS = ["date_from", "date_to", "community", "kind", "level", "outcome", "state", "verified", "include_tests"];
let filterOptions = null;
let filterDefaults = {}; // what the form starts with when the address names no dates

// A Beijing-time date `days` before today, as the date inputs take it (2027-01-15).
function daysAgo(days) { return new Date(Date.now() - days * 86400e3).toLocaleDateString("en-CA", {timeZone: TZ}); }

function currentFilter() {
  const form = $("#filter");
  const params = new URLSearchParams();
  if (!form.elements.length) {  // not drawn yet: what the address says
    const given = new URLSearchParams(location.search);
    for (const key of FILTER_FIELDS) for (const v of given.getAll(key)) if (v) params.append(key, v);
    if (!params.has("date_from") && !params.has("date_to")) for (const [k, v] of Object.entries(filterDefaults)) params.set(k, v);
    return params;
  }
  for (const key of FILTER_FIELDS) {
    const el = form.elements[key];
    if (!el) continue;
    if (el.type === "checkbox") { if (el.checked) params.set(key, "true"); } else if (el.value) params.set(key, el.value);
  }
  return params;
}

function renderFilter(onSubmit) {
  const o = filterOptions, form = $("#filter");
  const values = currentFilter();
  const select = (name, label, choices) => `<label><span>${esc(t(label))}</span><select name="${name}">
      <option value="">${esc(t("all"))}</option>${choices.map(([v, l]) => `<option value="${esc(v)}"${values.get(name) === String(v) ? " selected" : ""}>${esc(l)}</option>`).join("")}</select></label>`;
  form.innerHTML = `
    <label><span>${esc(t("dateFrom"))}</span><input type="date" name="date_from" value="${esc(values.get("date_from") || "")}"></label>
    <label><span>${esc(t("dateTo"))}</span><input type="date" name="date_to" value="${esc(values.get("date_to") || "")}"></label>
    ${select("community", "community", o.communities.map((c) => [c.value, c.label]))}
    ${select("kind", "kind", o.kinds.map((k) => [k, kindName(k)]))}
    ${select("level", "level", o.levels.map((l) => [l.value, levelName(Number(l.value))]))}
    ${select("outcome", "outcome", o.outcomes.map((v) => [v, words("outcomeNames")[v] || v]))}
    ${select("state", "state", o.states.map((v) => [v, words("stateNames")[v] || v]))}
    ${select("verified", "verifiedFilter", [["true", t("verifiedYes")], ["false", t("verifiedNo")]])}
    <label class="check"><input type="checkbox" name="include_tests" value="true"${values.get("include_tests") === "true" ? " checked" : ""}> ${esc(t("includeTests"))}</label>
    <button type="submit" class="primary">${esc(t("search"))}</button>
    <button type="button" id="reset">${esc(t("reset"))}</button>`;
  form.onsubmit = (ev) => { ev.preventDefault(); history.replaceState(null, "", `?${currentFilter()}`); onSubmit(); };
  $("#reset").onclick = () => { history.replaceState(null, "", location.pathname); renderFilterFromAddress(onSubmit); onSubmit(); };
}
function renderFilterFromAddress(onSubmit) { $("#filter").innerHTML = ""; renderFilter(onSubmit); }

// The API's refusal (422 and the like) in words an operator can act on, in the user's
// language (i18n.js); the results of the previous filter are hidden, not left as if current.
async function showError(resp) {
  const el = $("#error");
  el.textContent = `${t("badFilter")}${await reasonOf(resp)}`;
  el.hidden = false;
  $("#content").hidden = true;
}
function clearError() { $("#error").hidden = true; $("#content").hidden = false; }

// Signs in (or sends to the sign-in page), fills the header, loads the filter's choices.
// Returns false if this role may not see the ledger (the page says so). `submit` runs when
// the filter is submitted, `relabel` after a change of language.
// `defaults`: the filter when the address names no dates (the report: the last 30 days).
async function initPage(key, submit, relabel, defaults = {}) {
  filterDefaults = defaults;
  const user = await startPage(key, {title: `${key}Title`, onLang: () => { if (filterOptions) { renderFilter(submit); relabel(); } }});
  if (!user) return false;
  const resp = await fetch("/api/ledger/options");
  if (resp.status === 401) { location.href = "/login"; return false; }
  if (resp.status === 403) {
    $("#denied").hidden = false; $("#content").hidden = true; $("#filter").hidden = true;
    return false;
  }
  filterOptions = await resp.json();
  renderFilter(submit);
  return true;
}
