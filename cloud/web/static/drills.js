// A drill's report (应急演练报告), for supervisors: each step of the drill's incidents against
// a real alarm's budgets, per operator and shift, and the previous drill's figures beside.
Object.assign(MESSAGES.zh, {
  drillsTitle: "街道值班室 · 应急演练报告", drillPick: "选择演练", noDrills: "还没有应急演练",
  drillSteps: "各环节用时（从平台收到事件起）", drillOperators: "按值班员和班次", drillIncidents: "演练事件",
  drillSummary: "应急演练 #{id}：{gateway}，{from} 至 {to}，共 {n} 个演练事件", drillNote: "说明",
  steps: {shown: "显示在看板", accepted: "受理", dispatched: "派单", resolved: "办结"},
  stepCol: "环节", taken: "完成数", meanS: "平均用时", maxS: "最长用时", budgetS: "时限（真实告警）", withinN: "时限内", missedN: "超时/未完成",
  previousMean: "上次演练平均用时", noPrevious: "这是第一次演练", operatorCol: "值班员", shiftCol: "班次", incidentsN: "事件数",
  nobody: "无人受理", alarmCol: "案件", deviceCol: "设备", secondsUnit: "秒", none: "—",
  drillMethod: "用时 = 该环节时间 − 平台收到演练事件的时间。时限取规则文件对同一规则、同一级别真实告警的规定：显示在看板按路由策略的送达时限，受理按受理时限；规则文件未规定派单和办结时限，只统计用时。演练结束时仍未办结的事件由系统关闭，不算值班室办结。演练告警不计入统计报表。",
});
Object.assign(MESSAGES.en, {
  drillsTitle: "Street duty room · Drill report", drillPick: "Drill", noDrills: "No drills yet",
  drillSteps: "Each step's time (from when the cloud received the event)", drillOperators: "By operator and shift", drillIncidents: "The drill's incidents",
  drillSummary: "Emergency drill #{id}: {gateway}, {from} to {to}, {n} incident(s)", drillNote: "Note",
  steps: {shown: "Shown on the board", accepted: "Accepted", dispatched: "Dispatched", resolved: "Resolved"},
  stepCol: "Step", taken: "Taken", meanS: "Mean", maxS: "Longest", budgetS: "Budget (real alarm)", withinN: "Within", missedN: "Late / not taken",
  previousMean: "Previous drill's mean", noPrevious: "This is the first drill", operatorCol: "Operator", shiftCol: "Shift", incidentsN: "Incidents",
  nobody: "nobody accepted", alarmCol: "Case", deviceCol: "Device", secondsUnit: "s", none: "—",
  drillMethod: "Time = the step's time − when the cloud received the drill's event. Budgets are the rules file's for a real alarm of the same rule and level: on the board within the routing policy's deliver_within_s, accepted within its budget_s; the rules give no budget to dispatch or to resolve, so those are measured only. A drill's case still open when the drill ends is closed by the system, not counted as resolved by the duty room. Drill cases never count in the report of real alarms.",
});

const $ = (sel) => document.querySelector(sel);
let current = null;

function secs(v) { return v == null ? t("none") : `${v.toFixed(1)} ${t("secondsUnit")}`; }
function when(iso) { return new Date(iso).toLocaleString(LANG === "zh" ? "zh-CN" : "en-GB", {timeZone: "Asia/Shanghai"}); }
function stepName(step) { return MESSAGES[LANG].steps[step] || step; }

function stepsTable(rep) {
  const previous = rep.previous ? Object.fromEntries(rep.previous.steps.map((s) => [s.step, s])) : {};
  const budgets = {};
  for (const i of rep.incidents) for (const s of i.steps) if (s.budget_s != null) budgets[s.step] = s.budget_s;
  $("#steps thead").innerHTML = `<tr><th>${esc(t("stepCol"))}</th><th class="num">${esc(t("taken"))}</th><th class="num">${esc(t("meanS"))}</th>
    <th class="num">${esc(t("maxS"))}</th><th class="num">${esc(t("budgetS"))}</th><th class="num">${esc(t("withinN"))}</th>
    <th class="num">${esc(t("missedN"))}</th><th class="num">${esc(rep.previous ? `${t("previousMean")} (#${rep.previous.drill_id})` : t("noPrevious"))}</th></tr>`;
  $("#steps tbody").innerHTML = rep.steps.map((s) => `<tr data-step="${s.step}"><td>${esc(stepName(s.step))}</td>
    <td class="num">${s.taken}</td><td class="num">${secs(s.mean_s)}</td><td class="num">${secs(s.max_s)}</td>
    <td class="num">${secs(budgets[s.step])}</td><td class="num">${s.within}</td><td class="num">${s.missed}</td>
    <td class="num">${secs(previous[s.step]?.mean_s)}</td></tr>`).join("");
}

function operatorsTable(rep) {
  $("#operators thead").innerHTML = `<tr><th>${esc(t("operatorCol"))}</th><th>${esc(t("shiftCol"))}</th><th class="num">${esc(t("incidentsN"))}</th>
    ${rep.steps.map((s) => `<th class="num">${esc(stepName(s.step))}</th>`).join("")}</tr>`;
  $("#operators tbody").innerHTML = rep.by_operator.map((g) => `<tr><td>${esc(g.operator || t("nobody"))}</td>
    <td>${esc(LANG === "zh" ? g.shift_zh : g.shift_en)}</td><td class="num">${g.incidents}</td>
    ${g.steps.map((s) => `<td class="num">${secs(s.mean_s)}</td>`).join("")}</tr>`).join("");
}

function incidentsTable(rep) {
  $("#incidents thead").innerHTML = `<tr><th>${esc(t("alarmCol"))}</th><th>${esc(t("deviceCol"))}</th><th>${esc(t("operatorCol"))}</th>
    ${rep.steps.map((s) => `<th class="num">${esc(stepName(s.step))}</th>`).join("")}</tr>`;
  $("#incidents tbody").innerHTML = rep.incidents.map((i) => `<tr><td>#${i.alarm_id} ${esc(LANG === "zh" ? i.title_zh : i.title_en)}</td>
    <td>${esc(i.device)}</td><td>${esc(i.operator || t("nobody"))}</td>
    ${i.steps.map((s) => `<td class="num${s.within === false ? " overdue" : ""}">${secs(s.seconds)}</td>`).join("")}</tr>`).join("");
}

function render() {
  if (!current) return;
  const d = current.drill;
  $("#summary").textContent = t("drillSummary").replace(/\{(\w+)\}/g, (_, k) => ({
    id: d.id, gateway: d.gateway, from: when(d.starts_at), to: when(d.ended_at || d.ends_at), n: current.incidents.length,
  })[k]) + (d.note ? ` · ${t("drillNote")}${t("colon")}${d.note}` : "");
  stepsTable(current); operatorsTable(current); incidentsTable(current);
  $("#content").hidden = false;
}

async function show(id) {
  const resp = await fetch(`/api/drills/${id}/report`);
  if (!resp.ok) { $("#error").textContent = await reasonOf(resp); $("#error").hidden = false; return; }
  $("#error").hidden = true;
  current = await resp.json();
  render();
}

(async () => {
  if (!(await startPage("drills", {title: "drillsTitle", onLang: render}))) return;
  const resp = await fetch("/api/drills?open_only=false");
  if (!resp.ok) { $("#error").textContent = await reasonOf(resp); $("#error").hidden = false; return; }
  const drills = (await resp.json()).sort((a, b) => b.id - a.id);
  if (!drills.length) { $("#none").hidden = false; return; }
  const pick = $("#drill");
  pick.innerHTML = drills.map((d) => `<option value="${d.id}">#${d.id} ${esc(d.gateway)} ${esc(when(d.starts_at))}</option>`).join("");
  pick.onchange = () => show(pick.value);
  const wanted = new URLSearchParams(location.search).get("id");
  if (wanted && drills.some((d) => String(d.id) === wanted)) pick.value = wanted;
  await show(pick.value);
})();
