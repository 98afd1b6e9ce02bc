// Chinese first; English on request (remembered in localStorage).
const MESSAGES = {
  zh: {
    title: "街道值班室 · 告警看板", signin: "登录", username: "用户名", password: "密码",
    signinFailed: "用户名或密码错误", signinLimited: "登录失败次数过多，请五分钟后再试", signinDisabled: "该账号已停用，请联系管理员",
    connected: "实时连接正常", reconnecting: "连接中断，正在重连…", logout: "退出",
    soundOff: "浏览器禁止自动播放声音：点击此处开启告警声音", soundOn: "告警声音已开启",
    empty: "当前没有未办结的告警", level: "级别", alarm: "告警", where: "位置", device: "设备",
    waited: "已等待", state: "状态", actions: "操作", accept: "受理", resolve: "办结", escalated: "已升级", dispatch: "派单", dispatchTo: "派给（网格员/物业/119/120）", feedback: "情况反馈", send: "提交", dispatched_at: "派单", feedback_at: "情况反馈", verified_at: "督办核实", cleared_at: "设备自动解除", escalated_at: "升级",
    handled: "已处置", false_alarm: "误报", test: "测试", note: "处置说明",
    active: "待受理", accepted: "已受理", resolved: "已办结", repeats: "重复",
    timeline: "时间线", device_ts: "设备发现", received_at: "平台接收", stored_at: "入库",
    pushed_at: "推送", shown_at: "值班员看到", accepted_at: "受理", resolved_at: "办结",
    history: "处置记录", close: "关闭", lang: "English", levelNames: {1: "Ⅰ级 特别重大", 2: "Ⅱ级 重大", 3: "Ⅲ级 较大", 4: "Ⅳ级 一般"},
    kinds: {call: "一键呼叫", smoke: "烟感", gas: "燃气", air: "空气", water: "水浸", power: "电路", gateway: "网关"},
    value: "读数", gateways: "网关", online: "在线", offline: "离线",
    denied: "当前账号无权查看告警。告警看板仅供值班员、督导和管理员使用。",
    roles: {operator: "值班员", supervisor: "督导", installer: "安装人员", admin: "管理员", grid_worker: "网格员"},
    colon: "：", system: "系统",
    logActions: {raised: "产生告警", repeat: "重复触发", shown: "已显示给值班员", accepted: "受理", resolved: "办结", command: "下发指令"},
    nav: {board: "告警看板", ledger: "台账", report: "统计报表", devices: "设备状态", trends: "趋势", site: "场所与设备", install: "安装调试", users: "账号管理", duty: "值班排班", grid: "我的工单", drills: "应急演练"},
  },
  en: {
    title: "Street duty room · Alarm board", signin: "Sign in", username: "User name", password: "Password",
    signinFailed: "Wrong user name or password", signinLimited: "Too many failed sign-ins; wait five minutes", signinDisabled: "This account is disabled; ask an administrator",
    connected: "Live", reconnecting: "Connection lost, reconnecting…", logout: "Sign out",
    soundOff: "The browser blocks sound until you click: click here to enable alarm sound", soundOn: "Alarm sound on",
    empty: "No open alarms", level: "Level", alarm: "Alarm", where: "Where", device: "Device",
    waited: "Waiting", state: "State", actions: "Actions", accept: "Accept", resolve: "Resolve", escalated: "Escalated", dispatch: "Dispatch", dispatchTo: "To (grid worker, property, 119/120)", feedback: "Feedback", send: "Submit", dispatched_at: "Dispatched", feedback_at: "Feedback", verified_at: "Verified", cleared_at: "Cleared by the device", escalated_at: "Escalated",
    handled: "Handled", false_alarm: "False alarm", test: "Test", note: "Note",
    active: "Not accepted", accepted: "Accepted", resolved: "Resolved", repeats: "repeats",
    timeline: "Timeline", device_ts: "At the device", received_at: "Received", stored_at: "Stored",
    pushed_at: "Pushed", shown_at: "Shown", accepted_at: "Accepted", resolved_at: "Resolved",
    history: "History", close: "Close", lang: "中文", levelNames: {1: "Level I", 2: "Level II", 3: "Level III", 4: "Level IV"},
    kinds: {call: "Call button", smoke: "Smoke", gas: "Gas", air: "Air", water: "Water", power: "Circuit", gateway: "Gateway"},
    value: "Value", gateways: "Gateways", online: "online", offline: "offline",
    denied: "Your role cannot view alarms. The alarm board is for duty operators, supervisors and administrators.",
    roles: {operator: "operator", supervisor: "supervisor", installer: "installer", admin: "admin", grid_worker: "grid worker"},
    colon: ": ", system: "system",
    logActions: {raised: "raised", repeat: "repeated", shown: "shown to the operator", accepted: "accepted", resolved: "resolved", command: "command"},
    nav: {board: "Alarm board", ledger: "Ledger", report: "Report", devices: "Device health", trends: "Trends", site: "Site & devices", install: "Installation", users: "Accounts", duty: "Duty & roster", grid: "My cases", drills: "Drills"},
  },
};
let LANG = localStorage.getItem("lang") || "zh";
function t(key) { return MESSAGES[LANG][key] ?? key; }
function setLang(lang) { LANG = lang; localStorage.setItem("lang", lang); document.documentElement.lang = lang === "zh" ? "zh-CN" : "en"; }
function applyStatic() {
  document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
  document.querySelectorAll("[data-t-label]").forEach((el) => { el.setAttribute("aria-label", t(el.dataset.tLabel)); });
  document.title = t("title");
}
setLang(LANG);

// Text from the server into HTML, in element content and in quoted attributes alike.
function esc(text) { return String(text ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})[c]); }

// The pages of the web app and the roles that may open each (the API checks again).
const DUTY = ["operator", "supervisor", "admin"];
const PAGES = [
  ["board", "/", DUTY], ["ledger", "/ledger", DUTY], ["report", "/report", DUTY],
  ["devices", "/devices", [...DUTY, "installer"]], ["trends", "/trends", [...DUTY, "installer"]],
  ["site", "/site", ["installer", "admin"]], ["install", "/install", ["installer", "admin"]],
  ["users", "/users", ["admin"]], ["duty", "/duty", DUTY],
  ["grid", "/grid", ["grid_worker"]], ["drills", "/drills", ["supervisor", "admin"]],
];
// Fills <nav id="nav"> with the links this role may follow; `active` is this page's key.
function renderNav(role, active) {
  const nav = document.getElementById("nav");
  if (!nav) return;
  nav.innerHTML = PAGES.filter(([, , roles]) => roles.includes(role))
    .map(([key, href]) => `<a href="${href}" data-page="${key}"${key === active ? ' aria-current="page"' : ""}>${MESSAGES[LANG].nav[key]}</a>`)
    .join("");
}

// The header every page shares: who is signed in (a lapsed session goes to the sign-in page),
// the nav, the language switch and sign-out. `title` is the page's title key; `onLang` redraws
// the page's own text after a switch. Resolves to the user ({name, role}), or null when the
// visitor is sent to sign in.
async function startPage(key, {title = "title", onLang = () => {}} = {}) {
  const label = () => { applyStatic(); document.title = t(title); };
  label();
  const me = await fetch("/api/me");
  if (!me.ok) { location.href = "/login"; return null; }
  const user = await me.json();
  const who = document.getElementById("user");
  const showUser = () => { if (who) who.textContent = `${user.name} (${MESSAGES[LANG].roles[user.role] || user.role})`; };
  if (who) { who.dataset.name = user.name; who.dataset.role = user.role; }
  showUser();
  renderNav(user.role, key);
  document.getElementById("lang").onclick = () => {
    setLang(LANG === "zh" ? "en" : "zh"); label(); showUser(); renderNav(user.role, key); onLang();
    if (typeof drawAlert === "function") drawAlert();
  };
  document.getElementById("logout").onclick = async () => {
    await fetch("/api/logout", {method: "POST"}); location.href = "/login";
  };
  // a duty page with the alert (alert.js) hears and sees waiting level-I alarms; the board
  // feeds it from its own stream
  if (typeof watchAlarms === "function" && key !== "board") watchAlarms(user.role);
  return user;
}

// ---- refusals, in the user's language, naming the field -----------------------------------
// The API refuses with {detail: "reason"} (our own reasons; with `zh` and `en` where it gives
// both) or with pydantic's list of problems ({type, loc, msg, ctx}). A person gets one line
// per problem: the field by its name on the form, then what is wrong with it.
const FIELD_NAMES = {
  zh: {password: "密码", username: "用户名", name: "名称", role: "角色", to: "派给", note: "说明", outcome: "办结结果",
    cause: "误报原因", minutes: "测试时长（分钟）", gateway: "网关", devices: "设备", date_from: "起始日期", date_to: "截止日期",
    level: "级别", kind: "类型", community: "社区", state: "状态", verified: "核实", id: "编号", address: "地址",
    serial: "序列号", model: "型号", home: "户", building: "楼栋", grid: "网格", phone: "电话", worker: "网格员",
    starts_at: "开始时间", ends_at: "结束时间", hours: "小时数", range: "时间范围", field: "读数项", device: "设备", code: "认领码"},
  en: {password: "Password", username: "User name", name: "Name", role: "Role", to: "To", note: "Note", outcome: "Outcome",
    cause: "Cause", minutes: "Test length (minutes)", gateway: "Gateway", devices: "Devices", date_from: "From", date_to: "To",
    level: "Level", kind: "Kind", community: "Community", state: "State", verified: "Verified", id: "Id", address: "Address",
    serial: "Serial number", model: "Model", home: "Home", building: "Building", grid: "Grid", phone: "Phone", worker: "Grid worker",
    starts_at: "Starts", ends_at: "Ends", hours: "Hours", range: "Range", field: "Reading", device: "Device", code: "Claim code"},
};
// What is wrong, by pydantic's problem type ({n}: the limit from its context).
const PROBLEMS = {
  zh: {missing: "必须填写", string_too_short: "至少 {n} 个字符", blank: "不能为空", string_too_long: "最多 {n} 个字符",
    greater_than: "须大于 {n}", greater_than_equal: "须不小于 {n}", less_than: "须小于 {n}", less_than_equal: "须不大于 {n}",
    number: "须为数字", date: "日期格式不对（例：2027-01-15）", choice: "不是可选的值", pattern: "格式不对", too_many: "最多 {n} 项", other: "输入不正确"},
  en: {missing: "required", string_too_short: "at least {n} characters", blank: "must not be empty", string_too_long: "at most {n} characters",
    greater_than: "must be more than {n}", greater_than_equal: "must be at least {n}", less_than: "must be less than {n}", less_than_equal: "must be at most {n}",
    number: "must be a number", date: "not a date (e.g. 2027-01-15)", choice: "not one of the choices", pattern: "not in the expected form", too_many: "at most {n} items", other: "not valid"},
};
// Our own reasons inside pydantic's "Value error, …", in Chinese (the English is the reason).
const VALUE_ERRORS_ZH = [
  [/control character U\+([0-9A-F]{4}) at position (\d+)/, "含有控制字符 U+$1（第 $2 位）：只能输入文字、制表符和换行"],
  [/only spaces/, "不能只有空格"],
  [/date_from .* is not before date_to/, "起始日期须早于截止日期"],
  [/is not a date like|is neither a date|expected an ISO date/, "日期格式不对（例：2027-01-15）"],
  [/out of range: the years 1970-2999/, "年份须在 1970–2999 之间"],
  [/a false alarm needs its cause/, "误报必须选择原因"],
  [/needs a note saying what it was/, "原因选“其他”时，请在说明中写明"],
  [/a cause is given only for a false alarm/, "只有误报才填写误报原因"],
];
function problemKey(p) {
  const type = p.type || "";
  if (type === "string_too_short") return p.ctx && p.ctx.min_length === 1 ? "blank" : type;
  if (["missing", "string_too_long", "greater_than", "greater_than_equal", "less_than", "less_than_equal"].includes(type)) return type;
  if (type === "too_long") return "too_many";
  if (/^(int|float|decimal)_(parsing|type|from_float)$/.test(type) || type === "finite_number") return "number";
  if (/^(date|datetime)_/.test(type)) return "date";
  if (type === "enum" || type === "literal_error") return "choice";
  if (type === "string_pattern_mismatch") return "pattern";
  return "other";
}
function problemText(p) {
  const words = PROBLEMS[LANG];
  const field = [...(p.loc || [])].reverse().find((part) => typeof part === "string" && !["body", "query", "path"].includes(part));
  const label = field ? (FIELD_NAMES[LANG][field] || field) : "";
  let what;
  if (p.type === "value_error") {
    const reason = String(p.msg || "").replace(/^Value error, /, "");
    const zh = VALUE_ERRORS_ZH.find(([pattern]) => pattern.test(reason));
    what = LANG === "zh" ? (zh ? reason.replace(new RegExp(`^.*?${zh[0].source}.*$`), zh[1]) : words.other) : reason;
  } else {
    const ctx = p.ctx || {};
    const n = ctx.min_length ?? ctx.max_length ?? ctx.gt ?? ctx.ge ?? ctx.lt ?? ctx.le ?? "";
    what = words[problemKey(p)].replace("{n}", n);
  }
  return label ? `${label}${t("colon")}${what}` : what;
}
// The refusal's body (parsed JSON, or null) → one line per problem.
function refusalText(body, status) {
  if (body && body.zh && body.en) return LANG === "zh" ? body.zh : body.en;
  const detail = body && body.detail;
  if (typeof detail === "string" && detail) return detail;
  if (Array.isArray(detail) && detail.length) return detail.map((p) => (p && p.type ? problemText(p) : String(p && (p.msg || p)))).join("；");
  return `HTTP ${status}`;
}
async function reasonOf(resp) {
  let body = null;
  try { body = await resp.json(); } catch { /* not JSON */ }
  return refusalText(body, resp.status);
}
