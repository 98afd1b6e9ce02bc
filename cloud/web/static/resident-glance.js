// Who lives in an alarm's home, on the board's row: name, age and the flags a responder must
// know at a glance (lives alone, mobility, hearing…). Phones and contacts are not here: they
// are in the case, behind the audited read of GET /api/alarms/{id}/resident.
//
// Read once when the board opens (one audited read, GET /api/site/residents/glance) and again
// when an alarm comes from a home with nobody on file in it (once per home: someone may have
// been added since the page opened).
Object.assign(MESSAGES.zh, {
  residentFlags: {lives_alone: "独居", mobility: "行动不便", hearing: "听力障碍", vision: "视力障碍", cognitive: "认知障碍", oxygen: "家庭用氧"},
});
Object.assign(MESSAGES.en, {
  residentFlags: {lives_alone: "lives alone", mobility: "limited mobility", hearing: "hard of hearing", vision: "poor sight", cognitive: "cognitive impairment", oxygen: "oxygen at home"},
});

const GLANCE = {homes: new Map(), asked: new Set(), reading: null};

// Resolves true when the map changed (the rows are then drawn again).
function readGlance() {
  if (GLANCE.reading) return GLANCE.reading;
  GLANCE.reading = (async () => {
    try {
      const resp = await fetch("/api/site/residents/glance");
      if (!resp.ok) return false;
      const body = await resp.json();
      GLANCE.homes = new Map(Object.entries(body.homes));
      document.body.dataset.glanceReads = String(Number(document.body.dataset.glanceReads || 0) + 1);
      return true;
    } catch { return false; } finally { GLANCE.reading = null; }
  })();
  return GLANCE.reading;
}

// An alarm from a home the page has nobody on file for: read again, once for that home.
function glanceMissing(homeId) {
  if (!homeId || GLANCE.homes.has(homeId) || GLANCE.asked.has(homeId)) return false;
  GLANCE.asked.add(homeId);
  return true;
}

function residentFlagText(flag) { return MESSAGES[LANG].residentFlags[flag] || flag; }

function glanceHtml(homeId) {
  const people = GLANCE.homes.get(homeId);
  if (!people || !people.length) return "";
  return people.map((r) => `<div class="glance"><span class="who">${esc(r.name)}${r.age != null ? ` ${r.age}${t("ageUnit") || ""}` : ""}</span>${r.flags.map((f) => ` <span class="flag" data-flag="${esc(f)}">${esc(residentFlagText(f))}</span>`).join("")}</div>`).join("");
}
