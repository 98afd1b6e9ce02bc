// The demo's simulator panel on the board (supervisors and admins, and only in a cloud that has
// a simulator: GET /api/sim answers 404 anywhere else, and then nothing is drawn). Each button
// does one thing to a simulated device below its gateway's drivers, or to a gateway's link
// (POST /api/sim/inject); what follows reaches the board the way a real alarm does.
Object.assign(MESSAGES.zh, {
  simTitle: "演示模拟器", simNote: "仅演示环境：操作模拟设备，告警经网关、MQTT 和规则真实送达看板",
  simActions: {press_call: "按下呼叫按钮", smoke_alarm: "烟感报警", smoke_clear: "烟感复位", methane: "设定甲烷浓度", cut_link: "断开网络", restore_link: "恢复网络", replay: "重放演示情景"},
  simLinkUp: "网络正常", simLinkDown: "网络已断开", simMethane: "甲烷 %LEL", simDone: "已执行",
  simMethaneRange: "甲烷浓度须为 0–100 之间的数（%LEL）",
});
Object.assign(MESSAGES.en, {
  simTitle: "Demo simulator", simNote: "The demo only: acts on simulated devices; alarms take the real path through the gateway, MQTT and the rules",
  simActions: {press_call: "Press the call button", smoke_alarm: "Trip the smoke alarm", smoke_clear: "Reset the smoke alarm", methane: "Set methane", cut_link: "Cut the link", restore_link: "Restore the link", replay: "Replay the scenario"},
  simLinkUp: "link up", simLinkDown: "link cut", simMethane: "Methane %LEL", simDone: "Done",
  simMethaneRange: "Methane must be a number from 0 to 100 (%LEL)",
});

const SIM = {panel: null, said: null, values: {}}; // values: the methane level typed per device

function simAction(action) { return MESSAGES[LANG].simActions[action] || action; }

function simButton(action, gateway, device = "") {
  return `<button type="button" data-sim="${action}" data-gateway="${esc(gateway)}" data-device="${esc(device)}">${esc(simAction(action))}</button>`;
}

function simDeviceHtml(d) {
  const kind = MESSAGES[LANG].kinds[d.kind] || d.kind;
  const controls = d.actions.map((action) => action === "methane"
    ? `<label class="sim-value">${esc(t("simMethane"))} <input type="number" min="0" max="100" step="1" value="${esc(SIM.values[`${d.gateway}/${d.device}`] ?? "30")}" data-value-for="${esc(d.gateway)}/${esc(d.device)}"></label>${simButton(action, d.gateway, d.device)}`
    : simButton(action, d.gateway, d.device)).join("");
  return `<li data-device="${esc(d.gateway)}/${esc(d.device)}"><span class="sim-where">${esc(d.building)} ${esc(d.home)} · ${esc(kind)} <span class="sub">${esc(d.device)}</span></span><span class="sim-controls">${controls}</span></li>`;
}

function drawSim() {
  const box = document.getElementById("sim");
  if (!box || !SIM.panel) return;
  const gateways = SIM.panel.gateways.map((g) => `<fieldset data-gateway="${esc(g.gateway)}">
      <legend>${esc(g.building)} · ${esc(t("gateway"))} ${esc(g.gateway)} <span class="sim-link ${g.link_up ? "up" : "down"}">${esc(t(g.link_up ? "simLinkUp" : "simLinkDown"))}</span>
        ${simButton(g.link_up ? "cut_link" : "restore_link", g.gateway)}</legend>
      <ul>${SIM.panel.devices.filter((d) => d.gateway === g.gateway).map(simDeviceHtml).join("")}</ul>
    </fieldset>`).join("");
  box.querySelector(".sim-body").innerHTML = `<p class="sub">${esc(t("simNote"))}</p>${gateways}
    <p>${simButton("replay", "")} <output id="sim-said" aria-live="polite">${SIM.said ? esc(SIM.said()) : ""}</output></p>`;
  box.querySelector("summary").textContent = t("simTitle");
}

async function simInject(button) {
  const {sim: action, gateway, device} = button.dataset;
  const body = {action};
  if (gateway) body.gateway = gateway;
  if (device) body.device = device;
  if (action === "methane") {
    const typed = document.querySelector(`[data-value-for="${gateway}/${device}"]`).value;
    body.value = Number(typed);
    if (typed.trim() === "" || !(body.value >= 0 && body.value <= 100)) {
      SIM.said = () => t("simMethaneRange");
      drawSim();
      return;
    }
  }
  button.disabled = true;
  try {
    const resp = await fetch("/api/sim/inject", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    if (resp.ok) {
      const done = await resp.json();
      SIM.said = () => `${t("simDone")}${t("colon")}${LANG === "zh" ? done.zh : done.en}`;
    } else {
      const reason = await reasonOf(resp);
      SIM.said = () => reason;
    }
  } catch { SIM.said = () => t("reconnecting"); }
  await loadSim(); // the links' state, as the simulator has it now
}

async function loadSim() {
  let resp;
  try { resp = await fetch("/api/sim"); } catch { return; }
  document.body.dataset.sim = resp.ok ? "on" : "off";
  if (!resp.ok) return; // not the demo, or not this role: no panel
  SIM.panel = await resp.json();
  let box = document.getElementById("sim");
  if (!box) {
    box = document.createElement("details");
    box.id = "sim";
    box.className = "sim";
    box.open = window.innerWidth > 700; // on a phone it starts folded, above the alarms
    box.innerHTML = `<summary></summary><div class="sim-body"></div>`;
    box.addEventListener("input", (ev) => {
      if (ev.target.dataset.valueFor) SIM.values[ev.target.dataset.valueFor] = ev.target.value;
    });
    box.addEventListener("click", (ev) => {
      const button = ev.target.closest("button[data-sim]");
      if (button) simInject(button);
    });
    document.querySelector("main").before(box);
  }
  drawSim();
}

// Relabelled when the page's language changes (i18n.js setLang sets <html lang>).
new MutationObserver(drawSim).observe(document.documentElement, {attributes: true, attributeFilter: ["lang"]});
loadSim();
