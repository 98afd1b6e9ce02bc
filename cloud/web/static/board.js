// The live board: a snapshot then updates over server-sent events; reconnects by itself
// (EventSource retries) and every (re)connection starts with a fresh snapshot.
const alarms = new Map();
const shownReported = new Set();
const outcomes = new Map(); // the outcome an operator picked per alarm, kept across re-renders
let soundEnabled = false;
let denied = false; // this role may not view alarms (the API said 403)
let audio = null;

const $ = (sel) => document.querySelector(sel);

function sortKey(a) { return [a.level, a.state === "active" ? 0 : 1, Date.parse(a.received_at)]; }
function compare(a, b) {
  const x = sortKey(a), y = sortKey(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return 0;
}
function since(iso) {
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 1000));
  const m = Math.floor(s / 60), h = Math.floor(m / 60);
  return h ? `${h}:${String(m % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}` : `${m}:${String(s % 60).padStart(2, "0")}`;
}
// An alarm nobody accepted within its budget has been escalated up the chain: say so.
function budget(a) {
  return a.state === "active" && a.escalations ? `<div class="sub overdue">${t("escalated")} ×${a.escalations}</div>` : "";
}
function esc(text) { const d = document.createElement("div"); d.textContent = text ?? ""; return d.innerHTML; }

function render() {
  const rows = [...alarms.values()].filter((a) => a.state !== "resolved").sort(compare);
  const body = $("#board tbody");
  body.innerHTML = rows.map((a) => `
    <tr class="level-${a.level} state-${a.state}" data-id="${a.id}" data-level="${a.level}" data-state="${a.state}">
      <td><span class="badge l${a.level}">${esc(MESSAGES[LANG].levelNames[a.level])}</span></td>
      <td><div class="title">${esc(LANG === "zh" ? a.title_zh : a.title_en)}</div>
          <div class="sub">${esc(MESSAGES[LANG].kinds[a.kind] || a.kind)}${a.value != null ? ` · ${t("value")} ${a.value}` : ""}${a.repeats ? ` · ${t("repeats")} ×${a.repeats}` : ""}</div></td>
      <td><div>${esc(a.building)} ${esc(a.home)}</div><div class="sub">${esc(a.community)} · ${esc(a.grid)}</div></td>
      <td><div>${esc(a.device)}</div><div class="sub">${esc(a.gateway)}</div></td>
      <td><div class="waited" data-since="${a.received_at}">${since(a.received_at)}</div>${budget(a)}</td>
      <td>${esc(t(a.state))}${a.accepted_by ? `<div class="sub">${esc(a.accepted_by)}</div>` : ""}</td>
      <td><div class="actions">
        ${a.state === "active" ? `<button class="accept" data-act="accept">${t("accept")}</button>` : ""}
        <select data-outcome>${["handled", "false_alarm", "test"].map((o) => `<option value="${o}"${outcomes.get(a.id) === o ? " selected" : ""}>${t(o)}</option>`).join("")}</select>
        <button class="resolve" data-act="resolve">${t("resolve")}</button>
        <button class="link" data-act="open">${t("timeline")}</button>
      </div></td>
    </tr>`).join("");
  $("#empty").hidden = denied || rows.length > 0;
  // "shown to an operator" only when the page is actually on screen (not a background tab)
  for (const a of document.visibilityState === "visible" ? rows : []) {
    if (!a.shown_at && !shownReported.has(a.id)) {
      shownReported.add(a.id);
      fetch(`/api/alarms/${a.id}/shown`, {method: "POST"});
    }
  }
  updateAlerting();
}

function updateAlerting() {
  const alerting = [...alarms.values()].some((a) => a.level === 1 && a.state === "active");
  document.body.dataset.alerting = alerting ? "true" : "false";
}

function beep() {
  if (!soundEnabled || document.body.dataset.alerting !== "true") return;
  audio = audio || new AudioContext();
  const osc = audio.createOscillator(), gain = audio.createGain();
  osc.frequency.value = 880; osc.type = "square"; gain.gain.value = 0.15;
  osc.connect(gain).connect(audio.destination);
  osc.start(); osc.stop(audio.currentTime + 0.35);
}
setInterval(beep, 1500);
setInterval(() => document.querySelectorAll(".waited").forEach((td) => { td.textContent = since(td.dataset.since); }), 1000);

function setSound(on) {
  soundEnabled = on;
  const btn = $("#sound");
  btn.className = `sound ${on ? "on" : "off"}`;
  btn.dataset.t = on ? "soundOn" : "soundOff";
  btn.textContent = t(btn.dataset.t);
  if (on) { audio = audio || new AudioContext(); audio.resume(); }
}

function connect() {
  const source = new EventSource("/api/alarms/stream");
  source.addEventListener("open", () => { $("#conn").className = "conn up"; $("#conn").dataset.t = "connected"; $("#conn").textContent = t("connected"); });
  source.addEventListener("error", async () => {
    $("#conn").className = "conn down"; $("#conn").dataset.t = "reconnecting"; $("#conn").textContent = t("reconnecting");
    if (source.readyState === EventSource.CLOSED) {
      // the server refused the stream (not a network blip): find out why before retrying
      source.close();
      if (await mayView()) setTimeout(connect, 2000);
    }
  });
  source.addEventListener("snapshot", (ev) => {
    alarms.clear();
    for (const a of JSON.parse(ev.data)) alarms.set(a.id, a);
    render();
  });
  source.addEventListener("alarm", (ev) => {
    const a = JSON.parse(ev.data).alarm;
    alarms.set(a.id, a);
    render();
  });
}

async function act(id, action, row) {
  let resp;
  if (action === "accept") resp = await fetch(`/api/alarms/${id}/accept`, {method: "POST"});
  else if (action === "resolve") {
    const outcome = row.querySelector("[data-outcome]").value;
    resp = await fetch(`/api/alarms/${id}/resolve`, {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({outcome, note: ""})});
  } else if (action === "open") return openCase(id);
  if (resp && resp.ok) { const a = await resp.json(); alarms.set(a.id, a); if (a.state === "resolved") outcomes.delete(a.id); render(); }
  else if (resp) alert(`${resp.status}: ${(await resp.json()).detail}`);
}

async function openCase(id) {
  const resp = await fetch(`/api/alarms/${id}`);
  if (!resp.ok) return;
  const {alarm, history} = await resp.json();
  const fmt = (iso) => iso ? new Date(iso).toLocaleString(LANG === "zh" ? "zh-CN" : "en-GB", {hour12: false}) + `.${String(new Date(iso).getMilliseconds()).padStart(3, "0")}` : "—";
  const steps = ["device_ts", "received_at", "stored_at", "pushed_at", "shown_at", "accepted_at",
    "dispatched_at", "feedback_at", "resolved_at", "verified_at"];
  for (const extra of ["escalated_at", "cleared_at"]) if (alarm[extra]) steps.splice(steps.indexOf("resolved_at"), 0, extra);
  const open = alarm.state !== "resolved";
  $("#case-body").innerHTML = `<h2>${esc(LANG === "zh" ? alarm.title_zh : alarm.title_en)} · ${esc(alarm.building)} ${esc(alarm.home)}</h2>
    <h3>${t("timeline")}</h3><ol class="timeline">${steps.map((s) => `<li data-step="${s}">${t(s)}${t("colon")}${fmt(alarm[s])}</li>`).join("")}</ol>
    ${open ? `<form id="dispatch" class="case-form"><h3>${t("dispatch")}</h3>
      <input name="to" required maxlength="100" placeholder="${esc(t("dispatchTo"))}">
      <input name="note" maxlength="1000" placeholder="${esc(t("note"))}"><button>${t("send")}</button></form>
    <form id="feedback" class="case-form"><h3>${t("feedback")}</h3>
      <input name="note" required maxlength="1000" placeholder="${esc(t("note"))}"><button>${t("send")}</button></form>` : ""}
    <h3>${t("history")}</h3><ol>${history.map((h) => `<li>${fmt(h.at)} ${esc(h.actor === "system" ? t("system") : h.actor)} ${esc(MESSAGES[LANG].logActions[h.action] || h.action)} ${esc(h.detail)}</li>`).join("")}</ol>`;
  for (const form of document.querySelectorAll("#case-body form")) {
    form.onsubmit = async (ev) => {
      ev.preventDefault();
      const body = Object.fromEntries(new FormData(form));
      const resp = await fetch(`/api/alarms/${id}/${form.id}`, {method: "POST",
        headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
      if (!resp.ok) { alert(`${resp.status}: ${(await resp.json()).detail}`); return; }
      const a = await resp.json(); alarms.set(a.id, a); render(); openCase(id);
    };
  }
  if (!$("#case").open) $("#case").showModal();
}

$("#board").addEventListener("change", (ev) => {
  if (!ev.target.matches("select[data-outcome]")) return;
  outcomes.set(Number(ev.target.closest("tr").dataset.id), ev.target.value);
});
$("#board").addEventListener("click", (ev) => {
  const btn = ev.target.closest("button[data-act]");
  if (!btn) return;
  const row = btn.closest("tr");
  if (btn.dataset.act !== "open") btn.disabled = true; // a double click must not act twice
  act(Number(row.dataset.id), btn.dataset.act, row).finally(() => { btn.disabled = false; });
});
document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") render(); });
$("#sound").onclick = () => setSound(!soundEnabled);
$("#case-close").onclick = () => $("#case").close();
function showUser() {
  const el = $("#user");
  if (el.dataset.name) el.textContent = `${el.dataset.name} (${MESSAGES[LANG].roles[el.dataset.role] || el.dataset.role})`;
}
$("#lang").onclick = () => { setLang(LANG === "zh" ? "en" : "zh"); applyStatic(); setSound(soundEnabled); showUser(); renderNav($("#user").dataset.role, "board"); render(); };
$("#logout").onclick = async () => { await fetch("/api/logout", {method: "POST"}); location.href = "/login"; };

// Whether this session may watch alarms: a lapsed session goes back to the sign-in page, a
// role without duty rights (e.g. an installer) gets a plain message instead of an empty board
// that would look like "no alarms".
async function mayView() {
  let resp;
  try { resp = await fetch("/api/alarms"); } catch { return true; } // network down: keep retrying
  if (resp.status === 401) { location.href = "/login"; return false; }
  if (resp.status === 403) {
    denied = true;
    $("#board").hidden = true; $("#empty").hidden = true; $("#sound").hidden = true; $("#conn").hidden = true;
    $("#denied").hidden = false;
    return false;
  }
  return true;
}

(async () => {
  applyStatic(); setSound(false);
  const me = await fetch("/api/me");
  if (!me.ok) { location.href = "/login"; return; }
  const user = await me.json();
  $("#user").dataset.role = user.role;
  $("#user").dataset.name = user.name;
  showUser();
  renderNav(user.role, "board");
  if (await mayView()) connect();
})();
