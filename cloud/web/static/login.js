// The sign-in page (kept out of the html: the Content-Security-Policy allows no inline script).
applyStatic();
document.getElementById("lang").onclick = () => { setLang(LANG === "zh" ? "en" : "zh"); applyStatic(); };
document.getElementById("login").onsubmit = async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const resp = await fetch("/api/login", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({username: form.get("username"), password: form.get("password")})});
  if (resp.ok) { location.href = "/"; return; }
  document.getElementById("error").textContent = t(resp.status === 429 ? "signinLimited" : "signinFailed");
};
