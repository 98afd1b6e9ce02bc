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
    roles: {operator: "值班员", supervisor: "督导", installer: "安装人员", admin: "管理员"},
    colon: "：", system: "系统",
    logActions: {raised: "产生告警", repeat: "重复触发", shown: "已显示给值班员", accepted: "受理", resolved: "办结", command: "下发指令"},
    nav: {board: "告警看板", ledger: "台账", report: "统计报表", devices: "设备状态", trends: "趋势", site: "场所与设备", install: "安装调试", users: "账号管理"},
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
    roles: {operator: "operator", supervisor: "supervisor", installer: "installer", admin: "admin"},
    colon: ": ", system: "system",
    logActions: {raised: "raised", repeat: "repeated", shown: "shown to the operator", accepted: "accepted", resolved: "resolved", command: "command"},
    nav: {board: "Alarm board", ledger: "Ledger", report: "Report", devices: "Device health", trends: "Trends", site: "Site & devices", install: "Installation", users: "Accounts"},
  },
};
let LANG = localStorage.getItem("lang") || "zh";
function t(key) { return MESSAGES[LANG][key] ?? key; }
function setLang(lang) { LANG = lang; localStorage.setItem("lang", lang); document.documentElement.lang = lang === "zh" ? "zh-CN" : "en"; }
function applyStatic() {
  document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
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
  ["users", "/users", ["admin"]],
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
