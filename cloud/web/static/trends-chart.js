// One trend chart, drawn with uPlot (vendored: /static/vendor/uPlot.iife.min.js and
// /static/vendor/uPlot.min.css must be loaded first). Used by the trends page and by anyone
// who wants a device's recent readings, e.g. the case dialog:
//
//   const resp = await fetch(`/api/trends?gateway=${gw}&device=${dev}&field=ch4_pct_lel&range=1h`);
//   const chart = drawSeries(document.getElementById("case-chart"), await resp.json(), {height: 220});
//
// drawSeries(el, trend, {height = 320, width = el.clientWidth, lang = LANG or "zh"})
//   el     an empty element; whatever it held (an earlier chart included) is replaced.
//   trend  the JSON of GET /api/trends (times, series[].label/values, limits[], unit, start, end).
//   Draws one line per series (the legend names it), and every limit of the rules in force as
//   a dashed line coloured by its level and labelled with the standard (e.g. "GB/T
//   18883-2022 24小时均值 >50 µg/m³ Ⅳ级"). The x axis spans the whole range asked for.
//   Returns the uPlot instance, or null when there is no reading (the element then shows a
//   message: .trend-empty). Call `.destroy()` on the instance when the element goes away.
(function () {
  // not the level colours of the limit lines (red, orange, yellow, blue)
  const PALETTE = ["#6a1b9a", "#00897b", "#2e7d32", "#ad1457", "#4e342e", "#5d4037", "#37474f", "#558b2f"];
  const LEVEL_COLOURS = {1: "#d32f2f", 2: "#f57c00", 3: "#c49000", 4: "#1976d2"};
  const EMPTY = {zh: "该时段没有读数", en: "No readings in this period"};

  function drawSeries(el, trend, options = {}) {
    const lang = options.lang || (typeof LANG !== "undefined" ? LANG : "zh");
    el.replaceChildren();
    const hasData = trend.times.length > 0 && trend.series.some((s) => s.values.some((v) => v != null));
    if (!hasData) {
      const p = document.createElement("p");
      p.className = "trend-empty";
      p.textContent = EMPTY[lang] || EMPTY.zh;
      el.appendChild(p);
      return null;
    }
    // the range's ends join the time axis, so the limit lines span the whole range
    const start = Math.floor(Date.parse(trend.start) / 1000);
    const end = Math.ceil(Date.parse(trend.end) / 1000);
    const first = trend.times[0] > start ? [start] : [];
    const last = trend.times[trend.times.length - 1] < end ? [end] : [];
    const times = [...first, ...trend.times, ...last];
    const pad = (values) => [...first.map(() => null), ...values, ...last.map(() => null)];
    const locale = lang === "zh" ? "zh-CN" : "en-GB";
    const long = trend.range === "1w" || trend.range === "1d";
    const stamp = (ts, withDate) => new Date(ts * 1000).toLocaleString(locale, {
      ...(withDate ? {month: "2-digit", day: "2-digit"} : {}), hour: "2-digit", minute: "2-digit", hour12: false,
    });
    const data = [times];
    const series = [{label: lang === "zh" ? "时间" : "Time", value: (u, ts) => (ts == null ? "—" : stamp(ts, true))}];
    trend.series.forEach((s, i) => {
      data.push(pad(s.values));
      series.push({
        label: s.label,
        stroke: PALETTE[i % PALETTE.length],
        width: 2,
        spanGaps: false,
        points: {show: true, size: 4},
        value: (u, v) => (v == null ? "—" : `${+v.toFixed(3)} ${trend.unit}`),
      });
    });
    for (const limit of trend.limits) {
      data.push(times.map(() => limit.value));
      series.push({
        label: lang === "zh" ? limit.label_zh : limit.label_en,
        stroke: LEVEL_COLOURS[limit.level] || "#555",
        width: 1.5,
        dash: [8, 6],
        points: {show: false},
        value: () => `${limit.value} ${trend.unit}`,
      });
    }
    const opts = {
      width: options.width || el.clientWidth || 800,
      height: options.height || 320,
      series,
      scales: {x: {time: true, range: [times[0], times[times.length - 1]]}},
      axes: [{values: (u, splits) => splits.map((ts) => stamp(ts, long))}, {label: `${lang === "zh" ? trend.name_zh : trend.name_en} (${trend.unit})`, size: 70}],
      legend: {show: true},
      cursor: {drag: {x: false, y: false}},
    };
    return new uPlot(opts, data, el);
  }

  window.drawSeries = drawSeries;
})();
