// The lines of a case's history (处置记录) in the user's language. The cloud writes each line
// once, in English (cloud/alarms, cloud/routing); here the known forms are put into Chinese,
// piece by piece: policy, step, whom, by which channel, what happened. A person's own words
// (a note, whom a case went to) are left as typed; an unknown form is shown as written.
Object.assign(MESSAGES.zh.logActions, {dispatched: "派单", feedback: "情况反馈", verified: "督办核实", notify: "通知", escalate: "升级", remind: "提醒", cleared: "设备解除", device_cleared: "设备已解除", inhibited: "抑制", delivered: "已送达", notify_failed: "通知失败", notify_skipped: "未通知", notify_pending: "待重试", notify_cancelled: "通知取消", field_accepted: "网格员接单"});
Object.assign(MESSAGES.en.logActions, {dispatched: "dispatched", feedback: "feedback", verified: "verified", notify: "notified", escalate: "escalated", remind: "reminded", cleared: "cleared", device_cleared: "device cleared", inhibited: "inhibited", delivered: "delivered", notify_failed: "notification failed", notify_skipped: "not notified", notify_pending: "to retry", notify_cancelled: "notification cancelled", field_accepted: "taken by the grid worker"});
const LOG_WORDS = {
  causes: {mistouch: "误触", device_fault: "设备故障", cooking: "烹饪油烟", unannounced_test: "测试未报备", other: "其他"},
  policies: {fire: "火灾", life_safety: "生命安全", urgent: "紧急", routine: "一般", checkin_visit: "平安报探访"},
  targets: {duty_room: "值班室", grid_worker: "网格员", street_supervisor: "街道值班长", emergency_contacts: "紧急联系人", duty_officer: "值班员", on_call_leader: "带班领导"},
  vias: {push: "值班室推送", webhook: "短信/语音网关", sms_aliyun: "阿里云短信", voice_aliyun: "阿里云语音电话", sms_tencent: "腾讯云短信", voice_tencent: "腾讯云语音电话", wecom: "企业微信", dingtalk: "钉钉", feishu: "飞书"},
  modes: {walk_test: "巡检测试", maintenance: "维护窗口"},
  clears: {"heard again": "设备恢复上报", "online again": "网关恢复在线", "clear held": "恢复正常并保持"},
};
const LEVEL_ROMAN = {I: 1, II: 2, III: 3, IV: 4};

function logWord(group, key) { return LOG_WORDS[group][key] || key; }
// "grid_worker (李网格) via webhook" / "emergency_contacts: no emergency contacts on file for …"
function toldZh(part) {
  let m = part.match(/^(\w+) \((.*)\) via (.+)$/);
  if (m) return `${logWord("targets", m[1])}（${m[2].replace(/ \((.+?) of (.+?)\)/g, "（$2的$1）")}），经${m[3].split(", ").map((v) => logWord("vias", v)).join("、")}`;
  m = part.match(/^(\w+): (.*)$/);
  if (m) return `${logWord("targets", m[1])}：${whyZh(m[2])}`;
  return part === "nobody else to tell" ? "无其他通知对象" : part;
}
// the daily check-in's clear reason (cloud/duty/checkin.py)
function checkinZh(text) {
  return text.replace(/^checked in at (\d\d:\d\d)$/, "平安报已报到 $1")
    .replace(/^window #(\d+) ended(?: by (\S+))?$/, (_, n, who) => `#${n} 已结束${who ? `（${who === "system" ? t("system") : who}）` : ""}`);
}
function whyZh(why) {
  const duty = why.match(/^no duty officer on the roster for (.+)$/);
  if (duty) return `排班表中没有值班员（${duty[1]}）`;
  const m = why.match(/^no (grid worker|supervisor|emergency contacts) on file for (.+)$/);
  if (m) return `档案中没有${{"grid worker": "网格员", supervisor: "街道值班长", "emergency contacts": "紧急联系人"}[m[1]]}（${m[2].replace(/^(grid|street) /, "")}）`;
  let n = why.match(/^channel (\w+) is not configured$/);
  if (n) return `未配置${logWord("vias", n[1])}通道`;
  n = why.match(/^alarm (\w+) before delivery$/);
  if (n) return `送达前告警已${t(n[1])}`;
  n = why.match(/^attempt (\d+): (.*)$/);
  if (n) return `第 ${n[1]} 次尝试：${whyZh(n[2])}`;
  return why;
}
const LOG_FORMS = {
  raised: (d) => {
    const m = d.match(/^level (I|II|III|IV)(?:; (\w+) #(\d+): recorded as a test, not sent to the duty room|; drill #(\d+): on the duty room's board, told to nobody else)?$/);
    if (!m) return d;
    const level = MESSAGES.zh.levelNames[LEVEL_ROMAN[m[1]]];
    if (m[4]) return `${level}；应急演练 #${m[4]}：在值班室看板处置，不通知其他人`;
    return m[2] ? `${level}；${logWord("modes", m[2])} #${m[3]}：按测试记录，未推送值班室` : level;
  },
  notify: (d) => stepZh(d), escalate: (d) => stepZh(d), remind: (d) => stepZh(d),
  command: (d) => {
    const m = d.match(/^call_accepted to (\S+): (sent|NOT sent)$/);
    return m ? `向 ${m[1]} 下发“已受理”提示：${m[2] === "sent" ? "已发送" : "未能发送"}` : d;
  },
  resolved: (d) => {
    const m = d.match(/^(handled|false_alarm|test|cleared)(?: \((\w+)\))?(?:: ([\s\S]*))?$/);
    if (!m) return d;
    return `${t(m[1] === "cleared" ? "cleared_at" : m[1])}${m[2] ? `（${logWord("causes", m[2])}）` : ""}${m[3] ? `：${checkinZh(m[3])}` : ""}`;
  },
  // a repeat: "level I, value 27.09; raised from level II; life safety now: latched, …"
  repeat: (d) => {
    const m = d.match(/^level (I|II|III|IV)(?:, value (-?[\d.]+))?(; raised from level (I|II|III|IV))?(; life safety now: latched, an operator closes it)?$/);
    if (!m) return d;
    return `${MESSAGES.zh.levelNames[LEVEL_ROMAN[m[1]]]}${m[2] ? `，读数 ${readingZh(m[2])}` : ""}${m[3] ? `（由${MESSAGES.zh.levelNames[LEVEL_ROMAN[m[4]]]}升级）` : ""}${m[5] ? "；转为生命安全告警：锁定，须人工办结" : ""}`;
  },
  cleared: (d) => clearZh(checkinZh(d)),
  device_cleared: (d) => {
    const m = d.match(/^([\s\S]*); latched: an operator closes it$/);
    return m ? `${clearZh(m[1])}；告警已锁定，须人工办结` : clearZh(d);
  },
  field_accepted: (d) => d === "on the grid worker's page" ? "网格员已在手机端接单" : d,
  feedback: (d) => d.replace(/ \[photo (\d+)\]$/, "（照片 $1）"),
};
// Why a device's condition ended, as the rules say it.
const CLEAR_FIELDS = {ch4_pct_lel: ["甲烷", "%LEL"], pm25_ugm3: ["PM2.5", "µg/m³"], pm10_ugm3: ["PM10", "µg/m³"], co2_ppm: ["CO₂", "ppm"], temp_c: ["温度", "°C"], hcho_mgm3: ["甲醛", "mg/m³"], tvoc_mgm3: ["TVOC", "mg/m³"]};
function readingZh(value) { return String(Math.round(Number(value) * 10) / 10); }
function clearZh(d) {
  if (LOG_WORDS.clears[d]) return LOG_WORDS.clears[d];
  let m = d.match(/^(\w+) from the device$/);
  if (m) return "设备报告恢复正常";
  m = d.match(/^(\w+) (-?[\d.]+)$/);
  if (m && CLEAR_FIELDS[m[1]]) return `读数回落：${CLEAR_FIELDS[m[1]][0]} ${readingZh(m[2])} ${CLEAR_FIELDS[m[1]][1]}`;
  m = d.match(/^(\w+) rise (-?[\d.]+) within (\d+) s$/);
  if (m && CLEAR_FIELDS[m[1]]) return `${CLEAR_FIELDS[m[1]][0]}上升速率回落：${m[3]} 秒内升 ${readingZh(m[2])} ${CLEAR_FIELDS[m[1]][1]}`;
  return d;
}
for (const action of ["delivered", "notify_failed", "notify_skipped", "notify_pending", "notify_cancelled"]) {
  LOG_FORMS[action] = (d) => {
    const m = d.match(/^step (\d+) to (\w+)(?: (.+?))? via (\w+): ([\s\S]*)$/);
    return m ? `第 ${Number(m[1]) + 1} 步 ${logWord("targets", m[2])}${m[3] ? ` ${m[3]}` : ""}（${logWord("vias", m[4])}）：${whyZh(m[5])}` : d;
  };
}
function stepZh(d) {
  // "[2027-01-15 夜班]": the roster's shift the step's roles were resolved in (cloud/duty/)
  const m = d.match(/^step (\d+) of policy (\w+)(?: \[(.+?)\])?(?: \(not accepted within (\d+) s\))?: (.*?)(?:; (\d+) reminder\(s\) skipped \(due while the cloud was down\))?$/);
  if (!m) return d;
  return `第 ${Number(m[1]) + 1} 步（${logWord("policies", m[2])}策略${m[3] ? `，${m[3]}` : ""}）${m[4] ? `，${m[4]} 秒内无人受理` : ""}：${m[5].split("; ").map(toldZh).join("；")}${m[6] ? `；云端停机期间跳过 ${m[6]} 次提醒` : ""}`;
}
// One history entry ({action, detail}) as the page shows its detail.
function logDetail(h) {
  if (LANG !== "zh" || !h.detail) return h.detail || "";
  const form = LOG_FORMS[h.action];
  return form ? form(h.detail) : h.detail;
}
