// Shared by the pages built from elements rather than HTML text (duty, grid, users): building
// elements and table rows (text from the server set as text, never HTML), the page's message
// line (#message), and calls to the API that say the server's reason when it refuses. Loaded
// after i18n.js, before the page's own script; not with ledger-common.js (both define `$`).
Object.assign(MESSAGES.zh, {refused: "操作失败"});
Object.assign(MESSAGES.en, {refused: "Refused"});

const $ = (sel) => document.querySelector(sel);
// A message with its {placeholders} filled; a missing value leaves the place empty.
const fill = (key, vars = {}) => t(key).replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? "");

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  node.append(...children);
  return node;
}

// A table row: each cell a text (set as textContent), a node, or a list of texts and nodes;
// `tag` "th" for a header row.
function tableRow(cells, props = {}, tag = "td") {
  const cellOf = (c) => (c instanceof Node || Array.isArray(c) ? el(tag, {}, ...[c].flat()) : el(tag, {textContent: c}));
  return el("tr", props, ...cells.map(cellOf));
}

// The page's one message line: what was done, or (error) why it was refused.
function say(text, error = false) {
  const box = $("#message");
  box.textContent = text;
  box.classList.toggle("error", error);
  box.hidden = false;
}

// A form handled by the page (it does not navigate): `send` reads it and posts it.
function onSubmit(form, send) {
  form.onsubmit = (ev) => { ev.preventDefault(); return send(); };
}

// Calls the API with a JSON body (or none). Signed out: to the sign-in page. Refused: says the
// server's reason in the user's language, naming the field (i18n.js). Done: says `okKey`'s
// message filled with `vars`, if given. Resolves to the answer ({} for 204), or null.
async function call(method, path, body, okKey, vars) {
  const resp = await fetch(path, {method, headers: body ? {"Content-Type": "application/json"} : {}, body: body ? JSON.stringify(body) : undefined});
  if (resp.status === 401) { location.href = "/login"; return null; }
  if (!resp.ok) { say(`${t("refused")}${t("colon")}${await reasonOf(resp)}`, true); return null; }
  if (okKey) say(fill(okKey, vars));
  return resp.status === 204 ? {} : resp.json();
}
