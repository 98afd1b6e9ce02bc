// Remote hush (远程消音) in the case dialog: for an accepted smoke alarm, a duration and one
// button. The cloud decides whether it may (cloud/alarms/hush.py) and says why not, in the
// user's language; the device's answer comes onto the case's history (`hush.result`) and the
// dialog redraws with it when the cloud pushes the case again.
Object.assign(MESSAGES.zh, {hush: "远程消音", hushFor: "消音时长", hushSent: "消音指令已发送，等待设备回复", hushMinutes: "分钟"});
Object.assign(MESSAGES.en, {hush: "Remote hush", hushFor: "Hush for", hushSent: "Hush sent; waiting for the device", hushMinutes: "min"});
Object.assign(MESSAGES.zh.logActions, {hush: "远程消音", "hush.result": "消音结果"});
Object.assign(MESSAGES.en.logActions, {hush: "remote hush", "hush.result": "hush result"});

function hushHtml(alarm) {
  if (alarm.kind !== "smoke" || alarm.state !== "accepted") return "";
  const minutes = [1, 3, 5, 10].map((m) => `<option value="${m * 60}"${m === 5 ? " selected" : ""}>${m} ${t("hushMinutes")}</option>`).join("");
  return `<form id="hush" class="case-form"><h3>${t("hush")}</h3>
    <select name="duration_s" aria-label="${esc(t("hushFor"))}">${minutes}</select><button>${t("hush")}</button>
    <p class="sub" id="hush-sent" role="status" hidden>${t("hushSent")}</p></form>`;
}

function wireHush(id) {
  const form = document.querySelector("#hush");
  if (!form) return;
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    let resp;
    try {
      resp = await fetch(`/api/alarms/${id}/hush`, {method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({duration_s: Number(form.elements.duration_s.value)})});
    } catch { alert(t("reconnecting")); button.disabled = false; return; }
    button.disabled = false;
    if (!resp.ok) { alert(`${resp.status}: ${await reasonOf(resp)}`); return; }
    form.querySelector("#hush-sent").hidden = false;
  };
}
