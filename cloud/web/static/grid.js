// The grid worker's phone page (网格员 · 我的工单): the cases dispatched to them and their
// grid's check-in visit tasks, one card each — accept (接单), navigate to the home (a map app,
// by the building's address), feedback with a photo (情况反馈), resolve (办结). Chinese first,
// one-handed on a 390 px screen: the buttons fill the card's width at the bottom. The list is
// fetched again every 15 s. Text from the server is set with textContent, never HTML.
Object.assign(MESSAGES.zh, {
  grdTitle: "网格员 · 我的工单", grdDenied: "此页面仅供网格员使用。", grdEmpty: "暂无派给你的工单。",
  grdAccept: "接单", grdNavigate: "导航", grdFeedback: "反馈", grdResolve: "办结", grdSend: "提交反馈",
  grdResolveDo: "确认办结", grdNote: "现场情况", grdResolveNote: "办结说明", grdPhoto: "现场照片",
  grdTaken: "已接单 {at}", grdNotTaken: "待接单", grdPhotos: "已附照片 {n} 张", grdResidents: "住户：{names}",
  grdDispatched: "派单：{to}", grdReceived: "{at} 报警", grdAcceptedMsg: "已接单", grdFedMsg: "反馈已提交",
  grdResolvedMsg: "已办结", grdCancel: "取消",
});
Object.assign(MESSAGES.en, {
  grdTitle: "Grid worker · My cases", grdDenied: "This page is for grid workers.", grdEmpty: "No cases for you now.",
  grdAccept: "Accept", grdNavigate: "Navigate", grdFeedback: "Feedback", grdResolve: "Resolve", grdSend: "Send feedback",
  grdResolveDo: "Resolve now", grdNote: "What you found", grdResolveNote: "Resolution note", grdPhoto: "Photo",
  grdTaken: "accepted {at}", grdNotTaken: "not accepted yet", grdPhotos: "{n} photo(s) attached", grdResidents: "Residents: {names}",
  grdDispatched: "Dispatched: {to}", grdReceived: "alarm at {at}", grdAcceptedMsg: "Accepted", grdFedMsg: "Feedback sent",
  grdResolvedMsg: "Resolved", grdCancel: "Cancel",
});

const when = (iso) => new Date(iso).toLocaleString(LANG === "zh" ? "zh-CN" : "en-GB", {timeZone: "Asia/Shanghai", month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit"});
let cases = [];
let open = {};  // case id → "feedback" or "resolve": the form shown on its card

const readPhoto = (file) => new Promise((resolve, reject) => {
  const reader = new FileReader();
  reader.onload = () => resolve(reader.result);
  reader.onerror = () => reject(reader.error);
  reader.readAsDataURL(file);
});

function feedbackForm(c) {
  const note = el("textarea", {name: "note", maxLength: 2000, placeholder: t("grdNote"), ariaLabel: t("grdNote")});
  const photo = el("input", {type: "file", name: "photo", accept: "image/jpeg,image/png,image/webp", ariaLabel: t("grdPhoto")});
  photo.setAttribute("capture", "environment");
  const form = el("form", {className: "feedback"}, note, el("label", {}, el("span", {textContent: `${t("grdPhoto")} `}), photo),
    el("button", {type: "submit", className: "primary", textContent: t("grdSend")}));
  onSubmit(form, async () => {
    const file = photo.files[0];
    const body = {note: note.value, photo: file ? await readPhoto(file) : null};
    if (await call("POST", `/api/grid/cases/${c.id}/feedback`, body, "grdFedMsg")) { delete open[c.id]; await load(); }
  });
  return form;
}

function resolveForm(c) {
  const note = el("textarea", {name: "note", maxLength: 1000, placeholder: t("grdResolveNote"), ariaLabel: t("grdResolveNote")});
  const form = el("form", {className: "resolve"}, note, el("button", {type: "submit", className: "primary", textContent: t("grdResolveDo")}));
  onSubmit(form, async () => {
    if (await call("POST", `/api/grid/cases/${c.id}/resolve`, {note: note.value}, "grdResolvedMsg")) { delete open[c.id]; await load(); }
  });
  return form;
}

function card(c) {
  const li = el("li", {className: `card l${c.level}`});
  li.dataset.id = c.id;
  li.append(
    el("h2", {textContent: `${MESSAGES[LANG].levelNames[c.level]} · ${LANG === "zh" ? c.title_zh : c.title_en}`}),
    el("p", {textContent: `${c.building} ${c.home}`}),
    el("p", {className: "muted", textContent: c.address}),
  );
  if (c.residents.length) li.append(el("p", {textContent: fill("grdResidents", {names: c.residents.join("、")})}));
  if (c.dispatched_to) li.append(el("p", {className: "muted", textContent: fill("grdDispatched", {to: c.dispatched_to})}));
  li.append(el("p", {className: "muted", textContent: fill("grdReceived", {at: when(c.received_at)})}));
  li.append(el("p", {className: "status", textContent: c.taken_at ? fill("grdTaken", {at: when(c.taken_at)}) : t("grdNotTaken")}));
  if (c.photos) li.append(el("p", {textContent: fill("grdPhotos", {n: c.photos})}));
  const nav = el("a", {className: "button", textContent: t("grdNavigate"), target: "_blank", rel: "noopener"});
  nav.href = `https://uri.amap.com/search?keyword=${encodeURIComponent(c.address)}&callnative=1`;
  const acts = el("div", {className: "acts"});
  if (!c.taken_at) {
    const accept = el("button", {type: "button", className: "primary", textContent: t("grdAccept")});
    accept.onclick = async () => { if (await call("POST", `/api/grid/cases/${c.id}/accept`, null, "grdAcceptedMsg")) await load(); };
    acts.append(accept, nav);
  } else {
    const toggle = (what) => () => { open[c.id] = open[c.id] === what ? undefined : what; render(); };
    const feedback = el("button", {type: "button", textContent: t("grdFeedback")});
    feedback.onclick = toggle("feedback");
    const resolve = el("button", {type: "button", className: "primary wide", textContent: t("grdResolve")});
    resolve.onclick = toggle("resolve");
    acts.append(nav, feedback, resolve);
  }
  li.append(acts);
  if (open[c.id] === "feedback") li.append(feedbackForm(c));
  if (open[c.id] === "resolve") li.append(resolveForm(c));
  return li;
}

function render() {
  $("#empty").hidden = cases.length > 0;
  $("#cases").replaceChildren(...cases.map(card));
}

async function load() {
  const got = await call("GET", "/api/grid/cases");
  if (got) { cases = got; render(); }
}

(async () => {
  const user = await startPage("grid", {title: "grdTitle", onLang: render});
  if (!user) return;
  if (user.role !== "grid_worker") { $("#denied").hidden = false; return; }
  await load();
  setInterval(() => { if (!Object.values(open).some(Boolean)) load(); }, 15000);
})();
