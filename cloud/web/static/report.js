// The report (统计报表): per level, time to accept and to resolve (p50/p90/p99) and acceptance
// within the policy's budget, as a table and as uPlot bar charts; false-alarm rates per
// device model and building, and the causes of false alarms.
Object.assign(MESSAGES.zh, {
  byLevel: "按级别统计", ttaChart: "受理用时分位数（按级别，对数刻度）", ttrChart: "办结用时分位数（按级别，对数刻度）",
  budgetChart: "时限内受理率（按级别）", byModel: "各设备型号误报率", byBuilding: "各楼栋误报率", byCause: "误报原因",
  cases: "案件数", acceptedN: "已受理", resolvedN: "已办结", openN: "未办结", falseN: "误报", pctWithin: "时限内受理率",
  budgetOf: "受理时限", allLevels: "合计", model: "设备型号", building: "楼栋", rate: "误报率", cause: "原因", count: "次数", share: "占比",
  reportSummary: "共 {n} 条案件（按平台接收时间筛选，北京时间）", noData: "无", noChartData: "所选时段内没有可统计的案件",
  method: "分位数采用最近秩法：n 个用时从小到大排列，第 p 百分位取第 ⌈p/100 × n⌉ 个，总是实际出现过的用时，不做插值。受理用时 = 受理时间 − 平台接收时间；办结用时 = 办结时间 − 平台接收时间（系统自动解除的案件不计入）。时限内受理率 = 时限内受理数 ÷（时限内受理数 + 超时数）；受理时限按告警产生时其路由策略确定，尚在时限内未受理或在时限内被系统自动解除的案件不计入。误报率 = 误报数 ÷ 已办结数。",
});
Object.assign(MESSAGES.en, {
  byLevel: "By level", ttaChart: "Time to accept, percentiles by level (log scale)", ttrChart: "Time to resolve, percentiles by level (log scale)",
  budgetChart: "Accepted within budget, by level", byModel: "False-alarm rate by device model", byBuilding: "False-alarm rate by building", byCause: "Causes of false alarms",
  cases: "Cases", acceptedN: "Accepted", resolvedN: "Resolved", openN: "Open", falseN: "False alarms", pctWithin: "Within budget",
  budgetOf: "Budget", allLevels: "All levels", model: "Device model", building: "Building", rate: "False-alarm rate", cause: "Cause", count: "Count", share: "Share",
  reportSummary: "{n} cases (filtered by when the cloud received them, Beijing time)", noData: "none", noChartData: "No cases to chart in this period",
  method: "Percentiles by nearest rank: of n times sorted ascending, the p-th percentile is the one at rank ⌈p/100 × n⌉ — always an observed time, never interpolated. Time to accept = accepted − received; time to resolve = resolved − received (cases the system cleared by itself are left out). Within budget = within ÷ (within + missed); the budget is the routing policy's when the alarm was raised; cases still inside their budget, or cleared by the system within it, are not counted. False-alarm rate = false alarms ÷ resolved.",
});

const COLORS = ["#90caf9", "#1e88e5", "#0d47a1"];
const charts = [];
let lastReport = null;

function pct(v) { return v == null ? "—" : `${v}%`; }
function num(v) { return `<td class="num">${v}</td>`; }

async function load() {
  const resp = await fetch(`/api/ledger/report?${currentFilter()}`);
  if (resp.status === 401) { location.href = "/login"; return; }
  if (!resp.ok) { await showError(resp); return; }
  clearError();
  lastReport = await resp.json();
  render(lastReport);
}

function levelRow(lv, label, key) {
  const a = lv.time_to_accept_s, r = lv.time_to_resolve_s;
  return `<tr data-level="${key}"${lv.level ? ` class="level-${lv.level}"` : ' class="total"'}>
    <td>${lv.level ? `<span class="badge l${lv.level}">${esc(label)}</span>` : `<strong>${esc(label)}</strong>`}</td>
    <td class="num" data-col="count">${lv.count}</td>${num(lv.accepted)}${num(lv.resolved)}${num(lv.open)}
    <td class="num" data-col="tta-p50">${fmtDur(a.p50)}</td><td class="num" data-col="tta-p90">${fmtDur(a.p90)}</td><td class="num" data-col="tta-p99">${fmtDur(a.p99)}</td>
    <td class="num" data-col="ttr-p50">${fmtDur(r.p50)}</td><td class="num" data-col="ttr-p90">${fmtDur(r.p90)}</td><td class="num" data-col="ttr-p99">${fmtDur(r.p99)}</td>
    <td class="num" data-col="within">${pct(lv.budget.pct_within)}<div class="sub">${lv.budget.within}/${lv.budget.within + lv.budget.missed}</div></td>
    <td class="num">${lv.budget.budgets_s.map(fmtDur).join(", ") || "—"}</td>${num(lv.false_alarms)}
  </tr>`;
}

function rateTable(sel, rows, labelKey) {
  $(`${sel} thead`).innerHTML = `<tr><th>${esc(t(labelKey))}</th><th class="num">${esc(t("resolvedN"))}</th><th class="num">${esc(t("falseN"))}</th><th class="num">${esc(t("rate"))}</th></tr>`;
  $(`${sel} tbody`).innerHTML = rows.length ? rows.map((r) => `<tr data-key="${esc(r.key)}"><td>${esc(r.label)}</td>${num(r.resolved)}${num(r.false_alarms)}<td class="num" data-col="rate">${pct(r.rate_pct)}</td></tr>`).join("")
    : `<tr><td colspan="4">${esc(t("noData"))}</td></tr>`;
}

// Grouped bars on one chart: each level (x = 1..4) gets one bar per series, side by side.
// Times on a log scale (seconds to hours on one chart); percentages on a linear one.
// The log scale's ticks: round durations (1 s … 1 day), not powers of ten (1000 s reads
// "16分40秒").
const DURATION_TICKS = [1, 5, 10, 30, 60, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400];
function groupedBars(el, names, perLevel, fmt, yMax) {
  if (!perLevel.some((values) => values.some((v) => v != null))) {
    el.innerHTML = `<p class="trend-empty" data-empty>${esc(t("noChartData"))}</p>`; // nothing to draw: say so
    return;
  }
  const k = names.length, step = 0.8 / k, xs = [], cols = names.map(() => []);
  for (let lv = 1; lv <= 4; lv++) {
    for (let i = 0; i < k; i++) {
      xs.push(lv + (i - (k - 1) / 2) * step);
      cols.forEach((col, j) => col.push(j === i ? perLevel[lv - 1][i] : null));
    }
  }
  el.innerHTML = "";
  const opts = {
    width: Math.max(320, el.clientWidth || 420), height: 240,
    scales: {x: {time: false, range: [0.5, 4.5]},
      y: yMax ? {range: [0, yMax]} : {distr: 3, log: 10, range: (u, min, max) => [
        min > 0 && min < 1 ? 10 ** Math.floor(Math.log10(min)) : 1, Math.max(10, 10 ** Math.ceil(Math.log10(max || 1)))]}},
    axes: [
      {splits: () => [1, 2, 3, 4], values: (u, vals) => vals.map((v) => levelName(v))},
      {size: 80, values: (u, vals) => vals.map((v) => (v == null ? "" : fmt(v))),
        ...(yMax ? {} : {splits: (u) => DURATION_TICKS.filter((v) => v >= u.scales.y.min && v <= u.scales.y.max)})},
    ],
    legend: {live: false},
    cursor: {show: false},
    series: [{}, ...names.map((name, i) => ({
      label: name, fill: COLORS[i % COLORS.length], stroke: COLORS[i % COLORS.length], width: 0,
      paths: uPlot.paths.bars({size: [0.9, 80], align: 0}), points: {show: false},
    }))],
  };
  charts.push(new uPlot(opts, [xs, ...cols], el));
}

function render(rep) {
  $("#summary").textContent = fill(t("reportSummary"), {n: rep.count});
  $("#levels thead").innerHTML = `<tr><th>${esc(t("level"))}</th><th class="num">${esc(t("cases"))}</th><th class="num">${esc(t("acceptedN"))}</th>
    <th class="num">${esc(t("resolvedN"))}</th><th class="num">${esc(t("openN"))}</th>
    <th class="num">${esc(t("tta"))} P50</th><th class="num">P90</th><th class="num">P99</th>
    <th class="num">${esc(t("ttr"))} P50</th><th class="num">P90</th><th class="num">P99</th>
    <th class="num">${esc(t("pctWithin"))}</th><th class="num">${esc(t("budgetOf"))}</th><th class="num">${esc(t("falseN"))}</th></tr>`;
  $("#levels tbody").innerHTML = rep.levels.map((lv) => levelRow(lv, levelName(lv.level), lv.level)).join("") + levelRow(rep.total, t("allLevels"), "all");
  rateTable("#by-model", rep.by_model, "model");
  rateTable("#by-building", rep.by_building, "building");
  $("#causes thead").innerHTML = `<tr><th>${esc(t("cause"))}</th><th class="num">${esc(t("count"))}</th><th class="num">${esc(t("share"))}</th></tr>`;
  $("#causes tbody").innerHTML = rep.false_alarm_causes.length ? rep.false_alarm_causes.map((c) => `<tr><td>${esc(words("causeNames")[c.cause] || c.cause)}</td>${num(c.count)}<td class="num">${pct(c.share_pct)}</td></tr>`).join("")
    : `<tr><td colspan="3">${esc(t("noData"))}</td></tr>`;

  while (charts.length) charts.pop().destroy();
  const pcts = (key) => rep.levels.map((lv) => [lv[key].p50, lv[key].p90, lv[key].p99]);
  groupedBars($("#tta-chart"), ["P50", "P90", "P99"], pcts("time_to_accept_s"), fmtDur);
  groupedBars($("#ttr-chart"), ["P50", "P90", "P99"], pcts("time_to_resolve_s"), fmtDur);
  groupedBars($("#budget-chart"), [t("pctWithin")], rep.levels.map((lv) => [lv.budget.pct_within]), (v) => `${v}%`, 100);
}

(async () => {
  // the last 30 days unless the address says otherwise: a report of every case ever is slow
  const recent = {date_from: daysAgo(29)};
  if (await initPage("report", load, () => { if (lastReport) render(lastReport); }, recent)) await load();
})();
