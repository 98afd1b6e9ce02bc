// The duty page (值班排班): who is on duty now, the shift handover (the outgoing operator makes
// it, another account acknowledges it), today's check-ins of residents living alone, the
// roster of the next seven days, and — for supervisors and admins — its edit: people, the
// weekly pattern, swaps (换班), covers (代班) and holidays. Everything goes through
// /api/roster, /api/handovers and /api/checkins; names are set with textContent, never HTML.
Object.assign(MESSAGES.zh, {
  dtyTitle: "街道值班室 · 值班排班", dtyDenied: "当前账号无权查看值班安排。此页面仅供值班员、督导和管理员使用。",
  dtyNow: "当前班次", dtyNobody: "未排班", dtyHandover: "交接班", dtyHandoverNote: "交班说明", dtyDraft: "预览交班摘要",
  dtyMake: "交班", dtyCheckins: "今日平安报", dtyCheckinsEmpty: "没有登记平安报的住户。", dtyHome: "住户", dtyDueBy: "报到截止",
  dtyRoster: "排班表（未来 7 天）", dtyEdit: "编辑排班", dtyAddPerson: "添加人员", dtyAdd: "添加", dtyWeekly: "每周排班",
  dtyDay: "星期", dtyShift: "班次", dtySlot: "岗位", dtyPerson: "人员", dtySave: "保存", dtySwap: "换班", dtyWith: "与",
  dtyFirstDay: "第一个日期", dtySecondDay: "第二个日期", dtyReason: "原因", dtySwapDo: "换班", dtyCover: "代班", dtyCoverDo: "代班",
  dtyDate: "日期", dtyHoliday: "节假日", dtyHolidaySet: "设为节假日", dtyHolidayClear: "取消节假日", dtyDateCol: "日期",
  dtyDays: {mon: "周一", tue: "周二", wed: "周三", thu: "周四", fri: "周五", sat: "周六", sun: "周日", holiday: "节假日"},
  dtySources: {swap: "换班", cover: "代班", holiday: "节假日排班", weekly: ""},
  dtyReplaces: "原为 {name}", dtyNoPerson: "（无人）", dtyOpen: "未办结 {n} 件", dtyOverdue: "超时 {n} 件", dtyDevices: "设备/网关异常 {n} 个",
  dtyDeviceStates: {offline: "网关离线", silent: "设备失联", faulty: "设备故障"},
  dtyMadeBy: "{who} 于 {at} 交班（{shift}）", dtyExpected: "应接班：{name}", dtyAckBy: "{who} 于 {at} 接班", dtyAckNote: "接班说明",
  dtyAck: "接班确认", dtyWaitingAck: "待接班", dtyOwn: "（本人交班，须由接班人确认）", dtyNone: "暂无交接班记录",
  dtyCheckinStates: {checked_in: "已报到 {at}", waiting: "未到截止时间", missed: "未报到，已派网格员探访"},
  dtyMadeMsg: "已交班，等待接班确认", dtyAckMsg: "已接班", dtySavedMsg: "已保存",
  dtyNoTimeAt: "—", dtyCaseLine: "{level} {title} · {where} · {state}", dtyName: "姓名", dtyPhone: "电话", dtyHolidayName: "名称", dtyAccount: "账号（可选，网格员登录用）",
});
Object.assign(MESSAGES.en, {
  dtyTitle: "Street duty room · Duty & roster", dtyDenied: "Your role cannot see the duty roster. This page is for duty operators, supervisors and administrators.",
  dtyNow: "On duty now", dtyNobody: "nobody rostered", dtyHandover: "Shift handover", dtyHandoverNote: "Handover note", dtyDraft: "Preview the summary",
  dtyMake: "Hand over", dtyCheckins: "Today's check-ins", dtyCheckinsEmpty: "No homes are enrolled in the daily check-in.", dtyHome: "Home", dtyDueBy: "Due by",
  dtyRoster: "Roster (next 7 days)", dtyEdit: "Edit the roster", dtyAddPerson: "Add a person", dtyAdd: "Add", dtyWeekly: "Weekly pattern",
  dtyDay: "Day", dtyShift: "Shift", dtySlot: "Role", dtyPerson: "Person", dtySave: "Save", dtySwap: "Swap", dtyWith: "with",
  dtyFirstDay: "First date", dtySecondDay: "Second date", dtyReason: "Reason", dtySwapDo: "Swap", dtyCover: "Cover", dtyCoverDo: "Cover",
  dtyDate: "Date", dtyHoliday: "Holidays", dtyHolidaySet: "Make a holiday", dtyHolidayClear: "Not a holiday", dtyDateCol: "Date",
  dtyDays: {mon: "Monday", tue: "Tuesday", wed: "Wednesday", thu: "Thursday", fri: "Friday", sat: "Saturday", sun: "Sunday", holiday: "Holiday"},
  dtySources: {swap: "swap", cover: "cover", holiday: "holiday roster", weekly: ""},
  dtyReplaces: "instead of {name}", dtyNoPerson: "(nobody)", dtyOpen: "{n} open", dtyOverdue: "{n} overdue", dtyDevices: "{n} devices or gateways down",
  dtyDeviceStates: {offline: "gateway offline", silent: "device silent", faulty: "device faulty"},
  dtyMadeBy: "Handed over by {who} at {at} ({shift})", dtyExpected: "expected: {name}", dtyAckBy: "taken over by {who} at {at}", dtyAckNote: "Note on taking over",
  dtyAck: "Take over", dtyWaitingAck: "waiting to be taken over", dtyOwn: "(yours: the incoming operator takes it over)", dtyNone: "No handovers yet",
  dtyCheckinStates: {checked_in: "checked in {at}", waiting: "not due yet", missed: "missed: grid worker sent to visit"},
  dtyMadeMsg: "Handed over; waiting for the incoming operator", dtyAckMsg: "Shift taken over", dtySavedMsg: "Saved",
  dtyNoTimeAt: "—", dtyCaseLine: "{level} {title} · {where} · {state}", dtyName: "Name", dtyPhone: "Phone", dtyHolidayName: "Name", dtyAccount: "Account (optional, a grid worker's sign-in)",
});

const when = (iso) => iso ? new Date(iso).toLocaleString(LANG === "zh" ? "zh-CN" : "en-GB", {timeZone: "Asia/Shanghai", dateStyle: "short", timeStyle: "short"}) : t("dtyNoTimeAt");
const clock = (iso) => iso ? new Date(iso).toLocaleTimeString(LANG === "zh" ? "zh-CN" : "en-GB", {timeZone: "Asia/Shanghai", hour: "2-digit", minute: "2-digit"}) : t("dtyNoTimeAt");
const WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
let me = null, page = null, handovers = [], checkins = [], now = null, draft = null;

const slotName = (slot) => LANG === "zh" ? slot.zh : slot.en;
const shiftName = (s) => LANG === "zh" ? s.zh : s.en;
const slotKey = (role, scope) => `${role}/${scope}`;

function personCell(a) {
  if (!a) return el("span", {className: "muted", textContent: t("dtyNobody")});
  const span = el("span", {textContent: a.person.name});
  span.title = a.person.phone;
  const source = MESSAGES[LANG].dtySources[a.source];
  if (source) span.append(el("span", {className: `badge ${a.source}`, textContent: source}));
  if (a.replaces) span.append(el("span", {className: "muted", textContent: ` ${fill("dtyReplaces", {name: a.replaces})}`}));
  return span;
}

function renderNow() {
  if (!now || !page) return;
  $("#now-shift").textContent = `${now.day} ${shiftName(now)}${now.holiday ? ` · ${now.holiday}` : ""}`;
  const held = new Map(now.assignments.map((a) => [slotKey(a.role, a.scope), a]));
  $("#now-list").replaceChildren(...page.slots.map((slot) => {
    const a = held.get(slotKey(slot.role, slot.scope));
    return el("li", {}, el("span", {className: "role", textContent: slotName(slot)}), personCell(a), a ? el("span", {className: "muted", textContent: ` ${a.person.phone}`}) : "");
  }));
}

function renderRoster() {
  if (!page) return;
  $("#roster-table thead").replaceChildren(tableRow([t("dtyDateCol"), t("dtyShift"), ...page.slots.map(slotName)], {}, "th"));
  $("#roster-table tbody").replaceChildren(...page.shifts.map((s) => {
    const held = new Map(s.assignments.map((a) => [slotKey(a.role, a.scope), a]));
    const day = MESSAGES[LANG].dtyDays[WEEKDAYS[new Date(`${s.day}T12:00:00+08:00`).getUTCDay()]];
    const date = s.holiday ? [`${s.day} ${day}`, el("span", {className: "badge holiday", textContent: s.holiday})] : `${s.day} ${day}`;
    const tr = tableRow([date, shiftName(s), ...page.slots.map((slot) => personCell(held.get(slotKey(slot.role, slot.scope))))]);
    tr.dataset.day = s.day; tr.dataset.shift = s.shift;
    return tr;
  }));
}

function options(select, items) {
  const chosen = select.value;
  select.replaceChildren(...items.map(([value, label]) => el("option", {value, textContent: label, selected: value === chosen})));
}

function renderForms() {
  if (!page) return;
  const shifts = page.shifts.filter((s, i, all) => all.findIndex((o) => o.shift === s.shift) === i);
  document.querySelectorAll(".shift-select").forEach((s) => options(s, shifts.map((x) => [x.shift, shiftName(x)])));
  document.querySelectorAll(".slot-select").forEach((s) => options(s, page.slots.map((x) => [slotKey(x.role, x.scope), slotName(x)])));
  document.querySelectorAll(".person-select").forEach((s) => options(s, page.people.map((p) => [String(p.id), `${p.name} ${p.phone}`])));
  options($("#weekly-day"), ["mon", "tue", "wed", "thu", "fri", "sat", "sun", "holiday"].map((d) => [d, MESSAGES[LANG].dtyDays[d]]));
}

function summaryBlock(summary) {
  const box = el("div", {className: "summary"});
  box.append(el("div", {textContent: [fill("dtyOpen", {n: summary.open_cases.length}), fill("dtyOverdue", {n: summary.overdue.length}), fill("dtyDevices", {n: summary.devices.length})].join(" · ")}));
  const cases = el("ul");
  for (const c of summary.open_cases) {
    cases.append(el("li", {className: c.overdue ? "overdue" : "", textContent: fill("dtyCaseLine", {level: MESSAGES[LANG].levelNames[c.level], title: LANG === "zh" ? c.title_zh : c.title_en, where: c.where, state: t(c.state)})}));
  }
  const devices = el("ul");
  for (const d of summary.devices) {
    devices.append(el("li", {textContent: `${MESSAGES[LANG].dtyDeviceStates[d.state] || d.state} · ${d.where} · ${d.device || d.gateway} · ${when(d.last_seen)}`}));
  }
  box.append(cases, devices);
  return box;
}

function renderHandovers() {
  if (draft) $("#draft").replaceChildren(summaryBlock(draft));
  $("#draft").hidden = !draft;
  if (!handovers.length) { $("#handovers").replaceChildren(el("li", {className: "muted", textContent: t("dtyNone")})); return; }
  $("#handovers").replaceChildren(...handovers.map((h) => {
    const li = el("li");
    li.dataset.id = h.id;
    li.append(el("div", {textContent: fill("dtyMadeBy", {who: h.made_by, at: when(h.made_at), shift: `${h.day} ${LANG === "zh" ? h.shift_zh : h.shift_en}`})}));
    if (h.incoming_expected) li.append(el("div", {className: "muted", textContent: fill("dtyExpected", {name: h.incoming_expected})}));
    if (h.note) li.append(el("div", {textContent: `${t("dtyHandoverNote")}${t("colon")}${h.note}`}));
    li.append(summaryBlock(h.summary));
    if (h.acknowledged_by) {
      li.append(el("div", {className: "state on", textContent: fill("dtyAckBy", {who: h.acknowledged_by, at: when(h.acknowledged_at)}) + (h.ack_note ? ` · ${h.ack_note}` : "")}));
    } else if (h.made_by === me.name) {
      li.append(el("div", {className: "muted", textContent: `${t("dtyWaitingAck")} ${t("dtyOwn")}`}));
    } else {
      const note = el("input", {maxLength: 1000, ariaLabel: t("dtyAckNote"), placeholder: t("dtyAckNote")});
      const ack = el("button", {type: "button", className: "primary", textContent: t("dtyAck")});
      ack.onclick = async () => { if (await call("POST", `/api/handovers/${h.id}/acknowledge`, {note: note.value}, "dtyAckMsg")) await loadHandovers(); };
      li.append(el("div", {className: "acts"}, el("span", {className: "state off", textContent: t("dtyWaitingAck")}), note, ack));
    }
    return li;
  }));
}

function renderCheckins() {
  $("#checkins-empty").hidden = checkins.length > 0;
  $("#checkin-table").hidden = checkins.length === 0;
  $("#checkin-table tbody").replaceChildren(...checkins.map((c) => tableRow([
    `${c.building} ${c.home}`,
    c.due_by,
    el("span", {className: `state ${c.state}`, textContent: MESSAGES[LANG].dtyCheckinStates[c.state].replace("{at}", clock(c.checked_in_at))}),
  ])));
}

// the reasons' placeholders follow the language (their aria-labels do: data-t-label)
function placeholders() { document.querySelectorAll("input.reason").forEach((input) => { input.placeholder = t("dtyReason"); }); }

function renderAll() { placeholders(); renderNow(); renderRoster(); renderForms(); renderHandovers(); renderCheckins(); }

async function loadRoster() {
  const [p, n] = await Promise.all([call("GET", "/api/roster"), call("GET", "/api/roster/now")]);
  if (p) page = p;
  if (n) now = n;
  renderNow(); renderRoster(); renderForms();
}
async function loadHandovers() { const h = await call("GET", "/api/handovers"); if (h) { handovers = h; renderHandovers(); } }
async function loadCheckins() { const c = await call("GET", "/api/checkins"); if (c) { checkins = c; renderCheckins(); } }

function slotOf(select) { const [role, scope] = select.value.split("/"); return {role, scope}; }

function wireEdits() {
  const submit = (form, handler) => onSubmit($(form), async () => { if (await handler()) await loadRoster(); });
  submit("#person-form", async () => {
    const account = $("#person-account").value.trim() || null;
    const ok = await call("POST", "/api/roster/people", {name: $("#person-name").value.trim(), phone: $("#person-phone").value.trim(), account}, "dtySavedMsg");
    if (ok) { for (const id of ["#person-name", "#person-phone", "#person-account"]) $(id).value = ""; }
    return ok;
  });
  submit("#weekly-form", () => call("PUT", "/api/roster/weekly", {day: $("#weekly-day").value, shift: $("#weekly-shift").value, ...slotOf($("#weekly-slot")), person_id: Number($("#weekly-person").value) || null}, "dtySavedMsg"));
  submit("#swap-form", () => call("POST", "/api/roster/swap", {...slotOf($("#swap-slot")), first: {day: $("#swap-day1").value, shift: $("#swap-shift1").value}, second: {day: $("#swap-day2").value, shift: $("#swap-shift2").value}, reason: $("#swap-reason").value}, "dtySavedMsg"));
  submit("#cover-form", () => call("POST", "/api/roster/cover", {...slotOf($("#cover-slot")), day: $("#cover-day").value, shift: $("#cover-shift").value, person_id: Number($("#cover-person").value), reason: $("#cover-reason").value}, "dtySavedMsg"));
  submit("#holiday-form", () => call("PUT", `/api/roster/holidays/${$("#holiday-day").value}`, {name: $("#holiday-name").value.trim()}, "dtySavedMsg"));
  $("#holiday-clear").onclick = async () => { if ($("#holiday-day").value && await call("DELETE", `/api/roster/holidays/${$("#holiday-day").value}`, null, "dtySavedMsg")) await loadRoster(); };
}

(async () => {
  me = await startPage("duty", {title: "dtyTitle", onLang: renderAll});
  if (!me) return;
  if (!["operator", "supervisor", "admin"].includes(me.role)) { $("#denied").hidden = false; return; }
  for (const id of ["#now", "#handover", "#checkins", "#roster"]) $(id).hidden = false;
  placeholders();
  if (me.role !== "operator") { $("#edit").hidden = false; wireEdits(); }
  $("#handover-draft").onclick = async () => { const d = await call("GET", "/api/handovers/draft"); if (d) { draft = d; renderHandovers(); } };
  onSubmit($("#handover-form"), async () => {
    if (await call("POST", "/api/handovers", {note: $("#handover-note").value}, "dtyMadeMsg")) { $("#handover-note").value = ""; draft = null; await loadHandovers(); }
  });
  await Promise.all([loadRoster(), loadHandovers(), loadCheckins()]);
})();
