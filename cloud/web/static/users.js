// The admins' account page (账号管理): list the accounts, create one, change a role, reset a
// password, disable or enable, and sign an account out everywhere. Every change goes through
// /api/users (which audits it); the server's reason is shown when it refuses (e.g. the last
// active admin). Names come from users: rows are built with textContent, never as HTML.
Object.assign(MESSAGES.zh, {
  usrTitle: "街道值班室 · 账号管理", usrDenied: "当前账号无权管理账号。此页面仅供管理员使用。",
  usrNew: "新建账号", usrRole: "角色", usrCreate: "创建", usrPasswordHelp: "密码至少 10 个字符。",
  usrAccounts: "账号", usrState: "状态", usrCreated: "创建", usrPasswordChanged: "密码修改",
  usrEnabled: "启用", usrDisabled: "已停用", usrDisable: "停用", usrEnable: "启用",
  usrNewPassword: "新密码", usrResetPassword: "重置密码", usrEndSessions: "强制下线",
  usrBy: "由", usrNever: "—", usrBootstrap: "系统初始化（服务配置）",
  usrCreatedMsg: "已创建账号 {name}", usrRoleMsg: "{name} 的角色已改为 {role}",
  usrPasswordMsg: "{name} 的密码已重置，其所有登录已失效", usrDisabledMsg: "{name} 已停用，其所有登录已失效",
  usrEnabledMsg: "{name} 已启用", usrSessionsMsg: "{name} 已在所有设备上退出登录",
  usrDisableConfirm: "停用账号 {name}？其所有登录将立即失效。",
});
Object.assign(MESSAGES.en, {
  usrTitle: "Street duty room · Accounts", usrDenied: "Your role cannot manage accounts. This page is for administrators.",
  usrNew: "New account", usrRole: "Role", usrCreate: "Create", usrPasswordHelp: "Passwords have at least 10 characters.",
  usrAccounts: "Accounts", usrState: "State", usrCreated: "Created", usrPasswordChanged: "Password changed",
  usrEnabled: "active", usrDisabled: "disabled", usrDisable: "Disable", usrEnable: "Enable",
  usrNewPassword: "New password", usrResetPassword: "Reset password", usrEndSessions: "Sign out everywhere",
  usrBy: "by", usrNever: "—", usrBootstrap: "the service's first start (its settings)",
  usrCreatedMsg: "Account {name} created", usrRoleMsg: "{name} is now {role}",
  usrPasswordMsg: "Password of {name} reset; all their sessions ended", usrDisabledMsg: "{name} disabled; all their sessions ended",
  usrEnabledMsg: "{name} enabled", usrSessionsMsg: "{name} signed out everywhere",
  usrDisableConfirm: "Disable account {name}? All its sessions end at once.",
});

const ROLES = ["operator", "supervisor", "installer", "admin", "grid_worker"];
let accounts = [];

const when = (iso) => iso ? new Date(iso).toLocaleString(LANG === "zh" ? "zh-CN" : "en-GB", {dateStyle: "short", timeStyle: "short"}) : t("usrNever");
const roleName = (role) => MESSAGES[LANG].roles[role] || role;

// A change to an account: said when done (the server's reason when refused), then the list
// is read again. Resolves to whether it was done.
async function change(method, path, body, okKey, vars) {
  if (!await call(method, path, body, okKey, vars)) return false;
  await load();
  return true;
}

function roleOptions(select, chosen) {
  select.replaceChildren(...ROLES.map((r) => el("option", {value: r, textContent: roleName(r), selected: r === chosen})));
}

function row(account) {
  const name = account.name;
  const role = el("select", {ariaLabel: `${t("usrRole")} ${name}`});
  roleOptions(role, account.role);
  role.onchange = async () => {
    if (!await change("PUT", `/api/users/${encodeURIComponent(name)}/role`, {role: role.value}, "usrRoleMsg", {name, role: roleName(role.value)})) roleOptions(role, account.role);
  };
  const password = el("input", {type: "password", placeholder: t("usrNewPassword"), autocomplete: "new-password", ariaLabel: `${t("usrNewPassword")} ${name}`});
  const reset = el("button", {type: "button", textContent: t("usrResetPassword")});
  reset.onclick = () => change("PUT", `/api/users/${encodeURIComponent(name)}/password`, {password: password.value}, "usrPasswordMsg", {name});
  const toggle = el("button", {type: "button", className: account.disabled ? "" : "danger", textContent: t(account.disabled ? "usrEnable" : "usrDisable")});
  toggle.onclick = () => {
    if (account.disabled) return change("POST", `/api/users/${encodeURIComponent(name)}/enable`, null, "usrEnabledMsg", {name});
    if (!confirm(fill("usrDisableConfirm", {name}))) return;
    return change("POST", `/api/users/${encodeURIComponent(name)}/disable`, null, "usrDisabledMsg", {name});
  };
  const end = el("button", {type: "button", textContent: t("usrEndSessions")});
  end.onclick = () => change("DELETE", `/api/users/${encodeURIComponent(name)}/sessions`, null, "usrSessionsMsg", {name});
  const tr = tableRow([
    name,
    role,
    el("span", {className: `state ${account.disabled ? "off" : "on"}`, textContent: t(account.disabled ? "usrDisabled" : "usrEnabled")}),
    `${when(account.created_at)} ${t("usrBy")} ${account.created_by === "bootstrap" ? t("usrBootstrap") : account.created_by}`,
    when(account.password_changed_at),
    el("div", {className: "acts"}, password, reset, toggle, end),
  ], {className: account.disabled ? "disabled" : ""});
  tr.dataset.name = name;
  return tr;
}

function render() {
  $("#accounts tbody").replaceChildren(...accounts.map(row));
}

async function load() {
  const got = await call("GET", "/api/users");
  if (got) { accounts = got; render(); }
}

(async () => {
  const relabel = () => { roleOptions($("#new-role"), $("#new-role").value || "operator"); if (accounts.length) render(); };
  const user = await startPage("users", {title: "usrTitle", onLang: relabel});
  if (!user) return;
  if (user.role !== "admin") { $("#denied").hidden = false; return; }
  $("#new").hidden = false;
  $("#list").hidden = false;
  roleOptions($("#new-role"), "operator");
  onSubmit($("#new-form"), async () => {
    const name = $("#new-name").value.trim();
    const ok = await change("POST", "/api/users", {name, role: $("#new-role").value, password: $("#new-password").value}, "usrCreatedMsg", {name});
    if (ok) { $("#new-name").value = ""; $("#new-password").value = ""; }
  });
  await load();
})();
