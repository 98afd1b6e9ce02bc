// One-key voice (一键语音) on the board: a call from a home rings on every open board; one
// operator answers (受理 answers it too), both sides talk through the browser's own WebRTC,
// either side hangs up. The gateway's SDP offer comes with the call on the live stream; our
// answer (with all our ICE candidates) goes back through the cloud. board.js calls
// voiceListen(source), voiceAccepted(alarmId) and voiceCase(alarmId).
Object.assign(MESSAGES.zh, {
  callRinging: "语音呼叫", callAnswer: "接听", callHangup: "挂断", callConnecting: "正在接通…",
  callConnected: "通话中", callEnded: "通话已结束", callAnsweredBy: "接听人",
  callOffering: "正在建立语音…", callPrompt: "已向居民播放安抚提示", callMic: "无法使用麦克风",
  callHeard: "对方声音", callBy: {resident: "居民", system: "系统"}, callHungUpBy: "挂断方",
  callTalk: "通话时长", seconds: "秒", byResident: "居民", callWaiting: "语音等待中（网关正在另一通话）", callBack: "回拨", callingBack: "回拨中",
});
Object.assign(MESSAGES.en, {
  callRinging: "Voice call", callAnswer: "Answer", callHangup: "Hang up", callConnecting: "Connecting…",
  callConnected: "In call", callEnded: "Call ended", callAnsweredBy: "Answered by",
  callOffering: "Setting up voice…", callPrompt: "Calming prompt played to the resident", callMic: "The microphone cannot be used",
  callHeard: "Their voice", callBy: {resident: "the resident", system: "system"}, callHungUpBy: "Ended by",
  callTalk: "Talk time", seconds: "s", byResident: "resident", callWaiting: "Call waiting (the gateway is in another call)", callBack: "Call back", callingBack: "Calling back",
});
Object.assign(MESSAGES.zh.logActions, {call_back: "回拨", call_waiting: "语音等待", call_offered: "语音呼叫振铃", call_prompt: "播放安抚提示", call_answered: "接听语音", call_connected: "语音接通", call_ended: "语音结束", call_failed: "语音失败"});
Object.assign(MESSAGES.en.logActions, {call_back: "call-back", call_waiting: "call waiting", call_offered: "voice call ringing", call_prompt: "calming prompt", call_answered: "answered the call", call_connected: "call connected", call_ended: "call ended", call_failed: "voice failed"});
// the cloud writes these lines in English (cloud/voice/desk.py); in Chinese here
Object.assign(LOG_FORMS, {
  call_offered: (d) => d.replace(/^(\S+) ringing at (\S+)$/, "$2 振铃（$1）"),
  call_waiting: (d) => d.replace(/^(\S+) after (\S+)$/, "等待 $2 结束（$1）"),
  call_prompt: (d) => d.replace(/^(\S+): prompt played$/, "已播放“呼叫已送达值班室，请保持冷静”（$1）"),
  call_ended: (d) => endedZh(d), call_failed: (d) => endedZh(d),
});
// why a call ended (the cloud's and the gateway's English), in Chinese
const REASONS_ZH = [
  [/^hung up by (.+)$/, "$1 挂断"], [/^the resident hung up$/, "居民挂断"],
  [/^nobody answered in (\S+) s$/, "$1 秒无人接听"], [/^the broker is unreachable$/, "消息服务器不可达"],
  [/^media failed: microphone (.+?): no such (?:file|device)$/, "音频设备故障：找不到麦克风 $1"],
  [/^media failed: microphone (.+?): (.*)$/, "音频设备故障：麦克风 $1（$2）"], [/^media failed: speaker (.+?): (.*)$/, "音频设备故障：扬声器 $1（$2）"],
  [/^media failed: (.*)$/, "音频设备故障：$1"], [/^the gateway stopped$/, "网关已停止"],
  [/^the connection (failed|closed)$/, "通话连接中断"], [/^replaced by a new offer$/, "被新的呼叫取代"],
  [/^ended at the gateway$/, "网关结束通话"], [/^no voice on this gateway.*$/, "该网关未配置语音设备"],
  [/^answer refused, call ended: (.*)$/, "网关无法使用应答，通话结束：$1"],
  [/^offered again: the gateway's link came back$/, "网关恢复连接，已重新呼叫"], [/^the case was resolved$/, "案件已办结"],
  [/^the speakerphone is in call .*$/, "网关的语音设备正在另一通话"],
];
function reasonZh(why) {
  for (const [pattern, zh] of REASONS_ZH) if (pattern.test(why)) return why.replace(pattern, zh);
  return why;
}
function reasonText(why) { return LANG === "zh" ? reasonZh(why) : why; }
function endedZh(d) {
  const m = d.match(/^(\S+) after (\d+) s talk: ([\s\S]*)$/);
  return m ? `通话 ${m[2]} 秒：${reasonZh(m[3])}（${m[1]}）` : d;
}

const calls = new Map(); // call id → the call as the cloud last said
let session = null; // {callId, pc, mic, analyser, audio}
const myCallBacks = new Set(); // calls this page asked for (回拨): answered as soon as they ring
const answerWhenRinging = new Set(); // cases this page accepted before their call rang

function voiceListen(source) {
  source.addEventListener("call", (ev) => {
    const c = JSON.parse(ev.data).call;
    calls.set(c.id, c);
    drawCalls();
    if (c.status === "ringing" && (myCallBacks.delete(c.id) || answerWhenRinging.delete(c.alarm_id))) answer(c.id);
  });
  source.addEventListener("open", loadCalls);
}
async function loadCalls() {
  try {
    const resp = await fetch("/api/calls");
    if (!resp.ok) return;
    calls.clear();
    for (const c of await resp.json()) calls.set(c.id, c);
    drawCalls();
  } catch { /* the stream's reconnection tries again */ }
}
function callOf(alarmId) {
  let found = null;
  for (const c of calls.values()) if (c.alarm_id === alarmId && (!found || c.offered_at > found.offered_at)) found = c;
  return found;
}
// 受理 answers the case's ringing call (one click); someone else's answer is said, not shown as an error
async function voiceAccepted(alarmId) {
  const call = callOf(alarmId);
  if (call && call.status === "ringing") await answer(call.id);
  else if (call && (call.status === "offering" || call.status === "waiting")) answerWhenRinging.add(alarmId); // it rings soon: answered then
}
function voiceCase(alarmId) { drawCalls(alarmId); }

function callHtml(c) {
  const where = `${esc(c.gateway)} / ${esc(c.device)}`;
  const label = {waiting: t("callWaiting"), offering: t("callOffering"), ringing: t("callRinging"), answered: t("callConnecting"), connected: t("callConnected"), ended: t("callEnded")}[c.status];
  let html = `<div class="call ${esc(c.status)}" data-call="${esc(c.id)}" data-alarm="${c.alarm_id}"><strong class="call-state">${esc(c.callback_by && c.status !== "ended" && c.status !== "connected" ? t("callingBack") : label)}</strong> <span>${where}</span>`;
  if (c.answered_by) html += ` · ${esc(t("callAnsweredBy"))}${t("colon")}<span class="call-by">${esc(c.answered_by)}</span>`;
  if (c.prompt_played && c.status === "ringing") html += ` · <span class="sub">${esc(t("callPrompt"))}</span>`;
  if (c.status === "ended") {
    const by = MESSAGES[LANG].callBy[c.ended_by] || c.ended_by;
    html += ` · ${esc(t("callHungUpBy"))}${t("colon")}${esc(by)} · <span class="sub call-reason">${esc(reasonText(c.reason))}</span>`;
  }
  if (c.status === "ringing" && !c.callback_by) html += ` <button class="call-answer accept" data-call-act="answer">${esc(t("callAnswer"))}</button>`;
  // any duty operator may end a call (one left connected by a page that closed, too)
  if (c.status !== "ended") html += ` <button class="call-hangup" data-call-act="hangup">${esc(t("callHangup"))}</button>`;
  if (session && session.callId === c.id && c.status !== "ended") html += ` <span class="sub">${esc(t("callHeard"))}</span> <meter class="call-level" min="0" max="1" value="0"></meter>`;
  return html + "</div>";
}
function drawCalls() {
  const shown = [...calls.values()].filter((c) => c.status !== "ended" || Date.now() - Date.parse(c.ended_at) < 120000);
  let bar = document.getElementById("calls");
  if (!bar) { bar = document.createElement("section"); bar.id = "calls"; bar.setAttribute("aria-live", "polite"); document.querySelector("main").before(bar); }
  bar.innerHTML = shown.map(callHtml).join("");
  bar.hidden = !shown.length;
  // the open case shows its own call too (the dialog is modal: the bar behind it cannot be used)
  const dialog = document.getElementById("case");
  const body = document.getElementById("case-body");
  if (dialog && dialog.open && body) {
    const call = callOf(Number(dialog.dataset.id));
    let slot = document.getElementById("case-call");
    if (!slot) { slot = document.createElement("div"); slot.id = "case-call"; body.prepend(slot); }
    const alarm = alarms.get(Number(dialog.dataset.id));
    const callBack = (!call || call.status === "ended") && alarm && alarm.kind === "call" && !session;
    slot.innerHTML = (call ? callHtml(call) : "") + (callBack ? `<button id="call-back" data-alarm="${alarm.id}">${esc(t("callBack"))}</button>` : "");
  }
  if (session && calls.get(session.callId)?.status === "ended") endSession();
}
document.addEventListener("click", async (ev) => {
  if (ev.target.id === "call-back") {
    ev.target.disabled = true;
    const resp = await fetch(`/api/calls/callback/${ev.target.dataset.alarm}`, {method: "POST"});
    if (!resp.ok) { alert(await reasonOf(resp)); ev.target.disabled = false; return; }
    const c = await resp.json();
    myCallBacks.add(c.id);
    if (!calls.has(c.id)) calls.set(c.id, c); // the stream may have told us more already
    drawCalls();
    if (calls.get(c.id).status === "ringing" && myCallBacks.delete(c.id)) answer(c.id);
    return;
  }
  const button = ev.target.closest("[data-call-act]");
  if (!button) return;
  const id = button.closest("[data-call]").dataset.call;
  button.disabled = true;
  if (button.dataset.callAct === "answer") await answer(id); else await hangup(id);
});

// STUN/TURN for a duty room behind NAT (the cloud's SC_CLOUD_VOICE_ICE_SERVERS); none on a LAN
async function iceServers() {
  try {
    const resp = await fetch("/api/calls/ice-servers");
    return resp.ok ? (await resp.json()).map((s) => Object.fromEntries(Object.entries(s).filter(([, v]) => v !== null))) : [];
  } catch { return []; }
}
function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") resolve(); });
    setTimeout(resolve, 3000); // what is gathered by then goes (a TURN server slow to answer)
  });
}
async function answer(callId) {
  const call = calls.get(callId);
  if (!call || !call.sdp || session) return;
  let mic;
  try { mic = await navigator.mediaDevices.getUserMedia({audio: true}); } catch (err) { alert(`${t("callMic")}: ${err.message}`); return; }
  const pc = new RTCPeerConnection({iceServers: await iceServers()});
  const audio = new Audio(); audio.autoplay = true;
  session = {callId, pc, mic, audio, analyser: null};
  for (const track of mic.getTracks()) pc.addTrack(track, mic);
  pc.addEventListener("track", (ev) => {
    const stream = ev.streams[0] || new MediaStream([ev.track]);
    audio.srcObject = stream; // Chromium feeds WebAudio only from a track a media element plays
    audio.play().catch(() => {});
    const ctx = new AudioContext();
    const analyser = ctx.createAnalyser(); analyser.fftSize = 8192;
    ctx.createMediaStreamSource(stream).connect(analyser);
    session.analyser = analyser;
    ctx.resume().catch(() => {});
  });
  await pc.setRemoteDescription({type: "offer", sdp: call.sdp});
  await pc.setLocalDescription(await pc.createAnswer());
  await gathered(pc);
  const resp = await fetch(`/api/calls/${encodeURIComponent(callId)}/answer`, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({sdp: pc.localDescription.sdp})});
  if (!resp.ok) {
    endSession();
    alert(await reasonOf(resp));
    loadCalls();
    return;
  }
  const answered = await resp.json();
  calls.set(answered.id, answered);
  drawCalls();
}
async function hangup(callId) {
  const resp = await fetch(`/api/calls/${encodeURIComponent(callId)}/hangup`, {method: "POST"});
  if (session && session.callId === callId) endSession();
  if (!resp.ok) alert(await reasonOf(resp));
  else { const c = await resp.json(); calls.set(c.id, c); }
  drawCalls();
}
function endSession() {
  if (!session) return;
  const {pc, mic, audio} = session;
  session = null;
  pc.close();
  for (const track of mic.getTracks()) track.stop();
  audio.srcObject = null;
}
// the level of what we hear, on the meter (the operator sees the line is live)
function level() {
  if (!session || !session.analyser) return 0;
  const data = new Float32Array(session.analyser.fftSize);
  session.analyser.getFloatTimeDomainData(data);
  return Math.sqrt(data.reduce((sum, x) => sum + x * x, 0) / data.length);
}
setInterval(() => { for (const m of document.querySelectorAll(".call-level")) m.value = Math.min(1, level() * 4); }, 250);
