// The sign-in page (kept out of the html: the Content-Security-Policy allows no inline script).
applyStatic();
document.getElementById("lang").onclick = () => { setLang(LANG === "zh" ? "en" : "zh"); applyStatic(); };
document.getElementById("login").onsubmit = async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const resp = await fetch("/api/login", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({username: form.get("username"), password: form.get("password")})});
  if (resp.ok) {
    // each role starts where its work is: the duty room on the board, an installer on the
    // installation page
    const {role} = await resp.json();
    const first = PAGES.find(([, , roles]) => roles.includes(role));
    location.href = role === "installer" ? "/install" : first ? first[1] : "/";
    return;
  }
  const key = {429: "signinLimited", 403: "signinDisabled"}[resp.status] || "signinFailed";
  document.getElementById("error").textContent = t(key);
};
