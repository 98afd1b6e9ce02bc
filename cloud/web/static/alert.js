// The duty room's alert, on every duty page (board, ledger, report, device health, trends):
// the operator's sound choice is remembered across pages (localStorage "sound"), a waiting
// level-I alarm beeps on whichever page is open, a bar says how many wait with a link to the
// board, the sound switch turns into a red banner when sound is off while one waits, and a
// background tab's title flashes.
//
// The board feeds it from its own stream (setWaiting); the other pages open the live stream
// just for this (watchAlarms). Beeps are scheduled on the audio clock BEEP_AHEAD_S ahead and
// topped up by a timer and by every message: a background tab's timers may run once a minute,
// the audio clock does not slow down. A new level-I alarm beeps at once; acceptance silences
// the queue at once.
Object.assign(MESSAGES.zh, {
  soundOffAlarm: "Ⅰ级告警待受理，告警声音却已关闭：点击此处开启", soundBlocked: "告警声音已开启：浏览器要求先点击页面任意处才能出声",
  alertTitle: "【新告警】", waitingBar: "{n} 条Ⅰ级告警待受理", toBoard: "去告警看板受理",
});
Object.assign(MESSAGES.en, {
  soundOffAlarm: "A level-I alarm is waiting and the alarm sound is off: click here to turn it on", soundBlocked: "Alarm sound is on: the browser plays it after one click anywhere on the page",
  alertTitle: "[ALARM] ", waitingBar: "{n} level-I alarm(s) waiting to be accepted", toBoard: "Go to the board",
});

const BEEP_EVERY_S = 1.5, BEEP_AHEAD_S = 90;
let soundEnabled = localStorage.getItem("sound") === "on";
let audio = null;
let beepsUntil = 0; // audio time up to which beeps are scheduled
let queued = []; // the scheduled oscillators (stopped when the alert ends)
const alertingIds = new Set(); // the unaccepted level-I alarms the page knows of

// The sound switch (and banner) under the header; the board has it in its HTML.
function soundButton() {
  let btn = document.getElementById("sound");
  if (!btn) {
    btn = document.createElement("button");
    btn.id = "sound"; btn.className = "sound off"; btn.hidden = true;
    document.querySelector("header").after(btn);
  }
  return btn;
}
// The bar on pages other than the board: how many level-I alarms wait, and the way there.
function waitingBar() {
  let bar = document.getElementById("alert-bar");
  if (!bar) {
    bar = document.createElement("p");
    bar.id = "alert-bar"; bar.className = "alert-bar"; bar.setAttribute("role", "alert"); bar.hidden = true;
    soundButton().after(bar);
  }
  return bar;
}

function drawAlert() {
  const btn = soundButton();
  const waiting = alertingIds.size > 0;
  const blocked = soundEnabled && audio && audio.state !== "running";
  const key = !soundEnabled ? (waiting ? "soundOffAlarm" : "soundOff") : blocked ? "soundBlocked" : "soundOn";
  btn.className = `sound ${soundEnabled ? "on" : "off"}${!soundEnabled && waiting ? " alarm" : ""}`;
  btn.dataset.t = key;
  btn.textContent = t(key);
  const bar = document.getElementById("alert-bar");
  if (bar) {
    bar.hidden = !waiting;
    bar.innerHTML = waiting ? `<strong>${esc(t("waitingBar").replace("{n}", alertingIds.size))}</strong> <a href="/">${esc(t("toBoard"))}</a>` : "";
  }
}

function setSound(on) {
  soundEnabled = on;
  localStorage.setItem("sound", on ? "on" : "off");
  if (on) startAudio(); else stopBeeps();
  drawAlert();
}
// The audio context; a browser may keep it suspended until the page gets a click (it says so).
function startAudio() {
  audio = audio || new AudioContext();
  audio.onstatechange = drawAlert;
  audio.resume().then(() => { scheduleBeeps(); drawAlert(); }, () => {});
  scheduleBeeps();
}
function resumeOnGesture() {
  if (soundEnabled && audio && audio.state !== "running") startAudio();
}
document.addEventListener("pointerdown", resumeOnGesture, true);
document.addEventListener("keydown", resumeOnGesture, true);

// The unaccepted level-I alarms now waiting (their ids).
function setWaiting(ids) {
  const fresh = ids.some((id) => !alertingIds.has(id));
  alertingIds.clear(); ids.forEach((id) => alertingIds.add(id));
  document.body.dataset.alerting = ids.length ? "true" : "false";
  if (!ids.length) stopBeeps();
  else if (fresh) { stopBeeps(); scheduleBeeps(); } // a new one: beep now, not at the next slot
  flashTitle();
  drawAlert();
}
function beepAt(when) {
  const osc = audio.createOscillator(), gain = audio.createGain();
  osc.frequency.value = 880; osc.type = "square"; gain.gain.value = 0.15;
  osc.connect(gain).connect(audio.destination);
  osc.onended = () => { queued = queued.filter((o) => o !== osc); };
  osc.start(when); osc.stop(when + 0.35);
  queued.push(osc);
}
function scheduleBeeps() {
  if (!soundEnabled || !audio || !alertingIds.size) return;
  const at = audio.currentTime;
  if (beepsUntil < at) beepsUntil = at; // nothing pending: the first one now
  while (beepsUntil < at + BEEP_AHEAD_S) { beepAt(beepsUntil); beepsUntil += BEEP_EVERY_S; }
}
function stopBeeps() {
  for (const osc of queued) { osc.onended = null; try { osc.stop(); } catch { /* never started */ } osc.disconnect(); }
  queued = []; beepsUntil = 0;
}
setInterval(scheduleBeeps, 5000);

// The tab's title alternates with a warning while a level-I alarm waits and the page is not
// on screen (on screen, the row or the bar says it).
let titleTimer = null, plainTitle = "";
function flashTitle() {
  const flash = alertingIds.size > 0 && document.visibilityState === "hidden";
  if (flash && !titleTimer) {
    plainTitle = document.title;
    let on = false;
    const toggle = () => { on = !on; document.title = on ? `${t("alertTitle")}${plainTitle}` : plainTitle; };
    toggle();
    titleTimer = setInterval(toggle, 1000);
  } else if (!flash && titleTimer) {
    clearInterval(titleTimer); titleTimer = null; document.title = plainTitle;
  }
}
document.addEventListener("visibilitychange", flashTitle);

// Shows the sound switch for a duty role (an installer gets none).
function startAlert(role) {
  if (!DUTY.includes(role)) return false;
  const btn = soundButton();
  btn.hidden = false;
  btn.onclick = () => setSound(!soundEnabled);
  if (soundEnabled) startAudio();
  drawAlert();
  return true;
}

// Pages other than the board: the live stream, only for the level-I alarms that wait.
function watchAlarms(role) {
  if (!startAlert(role)) return;
  waitingBar();
  const open = new Map(); // id → alarm (unresolved)
  const update = () => setWaiting([...open.values()].filter((a) => a.level === 1 && a.state === "active").map((a) => a.id));
  const connect = () => {
    const source = new EventSource("/api/alarms/stream");
    source.addEventListener("snapshot", (ev) => {
      open.clear();
      for (const a of JSON.parse(ev.data)) open.set(a.id, a);
      update();
    });
    source.addEventListener("alarm", (ev) => {
      const a = JSON.parse(ev.data).alarm;
      if (a.state === "resolved") open.delete(a.id); else open.set(a.id, a);
      update();
    });
    source.addEventListener("error", () => {
      // refused (signed out, role changed): try again later; a lapsed session is the page's
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
    });
  };
  connect();
}
