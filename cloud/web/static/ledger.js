// The ledger (台账): every case, filtered, newest first, a page at a time; exports carry the
// same filter; a row opens the case's timeline.
const PAGE_SIZE = 50;
let pageNo = Number(new URLSearchParams(location.search).get("page")) || 1;

async function load() {
  const filter = currentFilter();
  const params = new URLSearchParams(filter);
  params.set("page", pageNo); params.set("page_size", PAGE_SIZE);
  const resp = await fetch(`/api/ledger?${params}`);
  if (resp.status === 401) { location.href = "/login"; return; }
  const exportQuery = new URLSearchParams(filter); exportQuery.set("lang", LANG);
  $("#csv").href = `/api/ledger/export.csv?${exportQuery}`;
  $("#xlsx").href = `/api/ledger/export.xlsx?${exportQuery}`;
  if (!resp.ok) { await showError(resp); return; }
  clearError();
  render(await resp.json());
}

function render(data) {
  const body = $("#ledger tbody");
  body.innerHTML = data.items.map((a) => `
    <tr class="level-${a.level}" data-id="${a.id}" data-level="${a.level}" data-state="${a.state}" tabindex="0">
      <td>${a.id}</td>
      <td><span class="badge l${a.level}">${esc(levelName(a.level))}</span></td>
      <td><div class="title">${esc(LANG === "zh" ? a.title_zh : a.title_en)}</div>
          <div class="sub">${esc(kindName(a.kind))} · ${esc(a.device)}${a.mode !== "live" ? ` · ${esc(words("modeNames")[a.mode])}` : ""}</div></td>
      <td><div>${esc(a.building)} ${esc(a.home)}</div><div class="sub">${esc(a.community)} · ${esc(a.grid)}</div></td>
      <td>${fmtTime(a.received_at)}</td>
      <td>${fmtTime(a.accepted_at)}${a.accepted_at ? `<div class="sub">${esc(a.accepted_by)} · ${fmtDur(a.time_to_accept_s)}${a.within_budget === false ? ` · <span class="overdue">${esc(t("budgetS"))} ${fmtDur(a.budget_s)}</span>` : ""}</div>` : ""}</td>
      <td>${esc(a.dispatched_to || "—")}</td>
      <td>${fmtTime(a.resolved_at)}${a.resolved_at ? `<div class="sub">${esc(a.resolved_by === "system" ? t("system") : a.resolved_by)} · ${fmtDur(a.time_to_resolve_s)}</div>` : ""}</td>
      <td>${a.outcome ? esc(words("outcomeNames")[a.outcome] || a.outcome) : "—"}${a.cause ? `<div class="sub">${esc(words("causeNames")[a.cause] || a.cause)}</div>` : ""}</td>
      <td>${esc(words("stateNames")[a.state] || a.state)}</td>
    </tr>`).join("");
  $("#empty").hidden = data.items.length > 0;
  $("#total").textContent = fill(t("totalCases"), {n: data.total});
  // an export over its limit would fail as a broken download: say so before anyone clicks
  for (const format of ["csv", "xlsx"]) {
    const max = filterOptions?.export_max_rows?.[format];
    const link = $(`#${format}`);
    const over = max != null && data.total > max;
    link.setAttribute("aria-disabled", over ? "true" : "false");
    link.title = over ? fill(t("exportTooMany"), {n: data.total, max}) : "";
  }
  $("#pageinfo").textContent = fill(t("pageInfo"), {p: data.page, n: data.pages});
  $("#prev").disabled = data.page <= 1;
  $("#next").disabled = data.page >= data.pages;
}

async function openCase(id) {
  const resp = await fetch(`/api/alarms/${id}`);
  if (!resp.ok) { await showError(resp); return; }
  const {alarm, history} = await resp.json();
  const steps = ["device_ts", "received_at", "stored_at", "pushed_at", "shown_at", "accepted_at",
    "dispatched_at", "feedback_at", "resolved_at", "verified_at"];
  for (const extra of ["escalated_at", "cleared_at"]) if (alarm[extra]) steps.splice(steps.indexOf("resolved_at"), 0, extra);
  // in the order things happened; what is still to come after
  const ordered = [...steps.filter((x) => alarm[x]).sort((x, y) => Date.parse(alarm[x]) - Date.parse(alarm[y])), ...steps.filter((x) => !alarm[x])];
  const said = {dispatched_at: alarm.dispatched_to ? ` · ${esc(t("dispatchedTo"))} ${esc(alarm.dispatched_to)}` : ""};
  const outcome = alarm.outcome ? ` · ${esc(words("outcomeNames")[alarm.outcome])}${alarm.cause ? `（${esc(words("causeNames")[alarm.cause])}）` : ""}` : "";
  $("#case-body").innerHTML = `<h2>#${alarm.id} ${esc(LANG === "zh" ? alarm.title_zh : alarm.title_en)} · ${esc(alarm.building)} ${esc(alarm.home)}</h2>
    <p><span class="badge l${alarm.level}">${esc(levelName(alarm.level))}</span> ${esc(kindName(alarm.kind))} · ${esc(alarm.device)} (${esc(alarm.model)}) · ${esc(alarm.community)} ${esc(alarm.grid)}${alarm.mode !== "live" ? ` · <strong>${esc(words("modeNames")[alarm.mode])}</strong>` : ""}${outcome}</p>
    <h3>${t("timeline")}</h3><ol class="timeline">${ordered.map((s) => `<li data-step="${s}">${t(s)}${t("colon")}${fmtTime(alarm[s])}${said[s] || ""}</li>`).join("")}</ol>
    ${alarm.note ? `<p>${esc(t("noteCause"))}${t("colon")}${esc(alarm.note)}</p>` : ""}
    <h3>${t("history")}</h3><ol class="history">${history.map((h) => `<li>${fmtTime(h.at)} ${esc(h.actor === "system" ? t("system") : h.actor)} ${esc(words("logActions")[h.action] || h.action)} ${esc(logDetail(h))}</li>`).join("")}</ol>`;
  if (!$("#case").open) $("#case").showModal();
}

$("#ledger").addEventListener("click", (ev) => { const row = ev.target.closest("tr[data-id]"); if (row) openCase(Number(row.dataset.id)); });
$("#ledger").addEventListener("keydown", (ev) => { const row = ev.target.closest("tr[data-id]"); if (row && ev.key === "Enter") openCase(Number(row.dataset.id)); });
$("#case-close").onclick = () => $("#case").close();
$("#prev").onclick = () => { pageNo = Math.max(1, pageNo - 1); load(); };
$("#next").onclick = () => { pageNo += 1; load(); };

(async () => {
  if (await initPage("ledger", () => { pageNo = 1; load(); }, load)) await load();
})();
for (const format of ["csv", "xlsx"]) {
  $(`#${format}`).addEventListener("click", (ev) => {
    const link = ev.currentTarget;
    if (link.getAttribute("aria-disabled") !== "true") return;
    ev.preventDefault();
    const error = $("#error");
    error.textContent = link.title;
    error.hidden = false;
  });
}
