// Trends (趋势): pick a building, then a home (or the whole building) and a device (or all of
// the home), a reading and a range; the chart is drawSeries() of trends-chart.js over
// GET /api/trends. The choice is kept in the address (?building=…&field=…&range=…).
Object.assign(MESSAGES.zh, {
  title: "街道值班室 · 趋势", trTitle: "街道值班室 · 趋势", trBuilding: "楼栋", trHome: "住户",
  trDevice: "设备", trField: "读数", tr1h: "1小时", tr1d: "1天", tr1w: "1周", tr30d: "1个月", tr1y: "1年",
  trWholeBuilding: "整栋楼", trAllDevices: "全部设备",
  trNote: "图中虚线为现行规则的限值（室内空气按 GB/T 18883-2022，其限值针对规定时段的平均值）；曲线为每个时间段的平均值。",
  trRanges: {"1h": "最近1小时（每分钟均值）", "1d": "最近1天（每15分钟均值）", "1w": "最近1周（每小时均值）", "30d": "最近1个月（每6小时均值）", "1y": "最近1年（每日均值）"},
  trFailed: "无法读取趋势：",
});
Object.assign(MESSAGES.en, {
  title: "Street duty room · Trends", trTitle: "Street duty room · Trends", trBuilding: "Building", trHome: "Home",
  trDevice: "Device", trField: "Reading", tr1h: "1 hour", tr1d: "1 day", tr1w: "1 week", tr30d: "1 month", tr1y: "1 year",
  trWholeBuilding: "Whole building", trAllDevices: "All devices",
  trNote: "Dashed lines are the limits of the rules in force (indoor air per GB/T 18883-2022, whose limits apply to means over a set period); the curves are the mean of each interval.",
  trRanges: {"1h": "last hour (1 min means)", "1d": "last day (15 min means)", "1w": "last week (hourly means)", "30d": "last month (6-hour means)", "1y": "last year (daily means)"},
  trFailed: "Cannot read the trend: ",
});

const REFRESH_MS = 60000;
const $ = (sel) => document.querySelector(sel);
let targets = null;
let role = "";
let chart = null;
let lastTrend = null;
const choice = {building: "", home: "", device: "", field: "ch4_pct_lel", range: "1h"};

function option(value, text, selected) {
  const o = document.createElement("option");
  o.value = value; o.textContent = text; o.selected = value === selected;
  return o;
}

function fillPickers() {
  const building = targets.buildings.find((b) => b.building_id === choice.building) || targets.buildings[0];
  choice.building = building ? building.building_id : "";
  $("#building").replaceChildren(...targets.buildings.map((b) => option(b.building_id, `${b.building}（${b.community} · ${b.grid}）`, choice.building)));
  const homes = building ? building.homes : [];
  if (!homes.some((h) => h.home_id === choice.home)) choice.home = "";
  $("#home").replaceChildren(option("", t("trWholeBuilding"), choice.home), ...homes.map((h) => option(h.home_id, h.home, choice.home)));
  const home = homes.find((h) => h.home_id === choice.home);
  const devices = home ? home.devices : [];
  if (!devices.some((d) => `${d.gateway}/${d.device}` === choice.device)) choice.device = "";
  $("#device").replaceChildren(option("", t("trAllDevices"), choice.device), ...devices.map((d) => option(`${d.gateway}/${d.device}`, `${d.device}（${d.model}）`, choice.device)));
  $("#device").disabled = !home;
  $("#field").replaceChildren(...targets.fields.map((f) => option(f.field, `${LANG === "zh" ? f.name_zh : f.name_en} (${f.unit})`, choice.field)));
  document.querySelectorAll("[data-range]").forEach((b) => b.setAttribute("aria-pressed", b.dataset.range === choice.range ? "true" : "false"));
}

function query() {
  const q = new URLSearchParams({field: choice.field, range: choice.range});
  if (choice.device) { const [gateway, device] = choice.device.split("/"); q.set("gateway", gateway); q.set("device", device); }
  else if (choice.home) q.set("home", choice.home);
  else q.set("building", choice.building);
  return q;
}

async function load() {
  if (!choice.building) { draw(null); return; }
  const q = query();
  history.replaceState(null, "", `?${q}`);
  let resp;
  try { resp = await fetch(`/api/trends?${q}`); } catch { resp = null; }
  if (resp && resp.status === 401) { location.href = "/login"; return; }
  const error = $("#error");
  if (!resp || !resp.ok) {
    error.hidden = false;
    error.textContent = t("trFailed") + (resp ? await reasonOf(resp) : t("reconnecting"));
    return;
  }
  error.hidden = true;
  draw(await resp.json());
}

function draw(trend) {
  lastTrend = trend;
  if (chart) { chart.destroy(); chart = null; }
  if (!trend) { $("#chart").replaceChildren(); $("#what").textContent = ""; return; }
  $("#what").textContent = `${trend.target_name} · ${LANG === "zh" ? trend.name_zh : trend.name_en} · ${MESSAGES[LANG].trRanges[trend.range]}`;
  chart = drawSeries($("#chart"), trend, {height: 380, width: $("#chart").clientWidth - 20});
}

function fromAddress() {
  const q = new URLSearchParams(location.search);
  for (const key of ["building", "home", "field", "range"]) if (q.get(key)) choice[key] = q.get(key);
  if (q.get("gateway") && q.get("device")) choice.device = `${q.get("gateway")}/${q.get("device")}`;
  if (choice.device && !choice.home) {
    for (const b of targets.buildings) for (const h of b.homes) {
      if (h.devices.some((d) => `${d.gateway}/${d.device}` === choice.device)) { choice.building = b.building_id; choice.home = h.home_id; }
    }
  }
  if (choice.home && !q.get("building")) {
    for (const b of targets.buildings) if (b.homes.some((h) => h.home_id === choice.home)) choice.building = b.building_id;
  }
}

$("#pick").onsubmit = (e) => e.preventDefault();  // pickers act at once; Enter submits nothing
$("#building").onchange = (e) => { choice.building = e.target.value; choice.home = ""; choice.device = ""; fillPickers(); load(); };
$("#home").onchange = (e) => { choice.home = e.target.value; choice.device = ""; fillPickers(); load(); };
$("#device").onchange = (e) => { choice.device = e.target.value; load(); };
$("#field").onchange = (e) => { choice.field = e.target.value; load(); };
document.querySelectorAll("[data-range]").forEach((b) => { b.onclick = () => { choice.range = b.dataset.range; fillPickers(); load(); }; });
window.addEventListener("resize", () => { if (chart) chart.setSize({width: $("#chart").clientWidth - 20, height: 380}); });

(async () => {
  const user = await startPage("trends", {onLang: () => { if (targets) fillPickers(); draw(lastTrend); }});
  if (!user) return;
  role = user.role;
  const resp = await fetch("/api/trends/targets");
  if (resp.status === 401) { location.href = "/login"; return; }
  targets = await resp.json();
  fromAddress();
  fillPickers();
  await load();
  setInterval(load, REFRESH_MS);
})();
