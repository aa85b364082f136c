// The cachost console: one page, views by the URL's hash, everything from the JSON API (console/API.md).
// Provider data is hostile: it is only ever put in the page as text (textContent), never as HTML.
"use strict";

let session = null;            // {user, role, csrf}

async function api(method, path, body) {
  const opts = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (method !== "GET") {
    opts.headers["Content-Type"] = "application/json";
    opts.headers["X-CSRF-Token"] = session ? session.csrf : "";
    opts.body = JSON.stringify(body || {});
  }
  const resp = await fetch(path, opts);
  const data = await resp.json().catch(() => ({ error: `HTTP ${resp.status}` }));
  if (resp.status === 401 && path !== "/api/login") { showLogin(); throw new Error(data.error); }
  if (!resp.ok) throw new Error(data.error || `HTTP ${resp.status}`);
  return data;
}

// el("tr", {class: "x", onclick: f}, child, "text", ...)
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function toast(text) {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.classList.add("show");
  setTimeout(() => t.classList.remove("show"), 4000);
}

const isAdmin = () => session && session.role === "admin";

function statusClass(s) {
  s = String(s || "");
  if (/^(ok|connected|executed|resolved)$/.test(s)) return "status ok";
  if (/reconnect|error|failed|critical|high/.test(s)) return "status bad";
  if (/permission|unavailable|held|medium|disabled|dry-run/.test(s)) return "status warn";
  return "status";
}

// A table of rows: columns [[key, title, render?]], onRow(row) when a row is clicked.
function table(rows, columns, onRow) {
  if (!rows.length) return el("p", { class: "muted" }, "Nothing here.");
  return el("table", {},
    el("thead", {}, el("tr", {}, columns.map(([, title]) => el("th", {}, title)))),
    el("tbody", {}, rows.map((r) => el("tr", onRow ? { class: "clickable", onclick: () => onRow(r) } : {},
      columns.map(([key, , render]) => el("td", {}, render ? render(r) : (r[key] ?? "")))))));
}

function view(...children) {
  const v = document.getElementById("view");
  v.replaceChildren(...children.flat());
}

function guarded(fn) {
  return async (...args) => {
    try { await fn(...args); } catch (e) { toast(e.message); }
  };
}

// ---------------------------------------------------------------------------- views

const views = {
  async apps() {
    const list = await api("GET", "/api/instances");
    const rows = list.map((i) => ({ ...i }));
    view(el("h1", {}, "Connected apps"), isAdmin() ? await connectForm() : null,
      table(rows, [
        ["name", "Instance"], ["app", "App"],
        ["status", "Status", (r) => el("span", { class: statusClass(r.status), "data-status": r.status }, r.status)],
        ["last_scan", "Last scan"], ["last_activity", "Last activity"], ["users", "Users"], ["files", "Files"],
        ["streams", "Streams", (r) => r.streams.map((s) => el("div", {}, `${s.stream}: `,
          el("span", { class: statusClass(s.status) }, s.status), s.error ? el("div", { class: "muted" }, s.error) : null))],
        ["actions", "", (r) => isAdmin() ? el("button", { class: "secondary", onclick: guarded(async (ev) => {
          ev.stopPropagation();
          await api("POST", `/api/instances/${encodeURIComponent(r.name)}/${r.enabled ? "pause" : "resume"}`);
          toast(`${r.name} ${r.enabled ? "paused" : "resumed"}`);
          route();
        }) }, r.enabled ? "Pause" : "Resume") : ""],
      ]));
  },

  async alerts(params) {
    const q = new URLSearchParams(params);
    if (!q.has("status")) q.set("status", "open");
    const list = await api("GET", "/api/alerts?" + q.toString());
    const chosen = new Set();
    const filter = (name, options) => el("label", {}, name,
      el("select", { name, onchange: (e) => { q.set(name, e.target.value); location.hash = "#/alerts?" + q.toString(); } },
        options.map((o) => el("option", { value: o, selected: q.get(name) === o }, o || "any"))));
    const bulk = (status) => guarded(async () => {
      if (!chosen.size) return toast("choose alerts first");
      const r = await api("POST", "/api/alerts/triage", { ids: [...chosen], status });
      toast(`${r.changed} alert(s) ${status}`);
      route();
    });
    view(el("h1", {}, "Alerts"),
      el("div", { class: "filters" },
        filter("status", ["open", "resolved", "dismissed", ""]),
        filter("severity", ["", "low", "medium", "high", "critical"]),
        el("label", {}, "Person, file or text", el("input", { name: "q", value: q.get("q") || "",
          onchange: (e) => { q.set("q", e.target.value); location.hash = "#/alerts?" + q.toString(); } })),
        isAdmin() ? el("button", { id: "bulk-resolve", onclick: bulk("resolved") }, "Resolve chosen") : null,
        isAdmin() ? el("button", { class: "secondary", onclick: bulk("dismissed") }, "Dismiss chosen") : null),
      table(list, [
        ["pick", "", (r) => el("input", { type: "checkbox", "aria-label": `choose alert ${r.id}`,
          onclick: (e) => { e.stopPropagation(); e.target.checked ? chosen.add(r.id) : chosen.delete(r.id); } })],
        ["id", "#"], ["created_at", "Raised"], ["severity", "Severity", (r) => el("span", { class: statusClass(r.severity) }, r.severity)],
        ["policy", "Policy"], ["instance", "Instance"], ["title", "Alert"], ["status", "State"], ["assignee", "Assignee"],
      ], (r) => { location.hash = `#/alert/${r.id}`; }));
  },

  async alert(id) {
    const a = await api("GET", `/api/alerts/${encodeURIComponent(id)}`);
    const triage = (body, said) => guarded(async () => {
      await api("POST", "/api/alerts/triage", { ids: [a.id], ...body });
      toast(said);
      route();
    });
    const rows = a.rows || [];
    view(el("h1", {}, `Alert #${a.id}: ${a.title}`),
      el("p", {}, el("span", { class: statusClass(a.severity) }, a.severity), ` · ${a.policy || "cachost"} · `,
        el("span", { id: "alert-status" }, a.status), a.assignee ? ` · assigned to ${a.assignee}` : ""),
      isAdmin() ? el("div", { class: "actions" },
        el("button", { id: "resolve", onclick: triage({ status: "resolved", note: "resolved in the console" }, "alert resolved") }, "Resolve"),
        el("button", { class: "secondary", onclick: triage({ status: "dismissed" }, "alert dismissed") }, "Dismiss"),
        el("button", { class: "secondary", onclick: triage({ assignee: session.user }, "assigned to you") }, "Assign to me"),
        a.status !== "open" ? el("button", { class: "secondary", onclick: triage({ status: "open" }, "alert reopened") }, "Reopen") : null) : null,
      el("h2", {}, "Evidence"),
      rows.length ? table(rows, Object.keys(rows[0]).map((k) => [k, k])) : null,
      el("pre", {}, JSON.stringify(a.evidence, null, 2)));
  },

  async governance() {
    const g = await api("GET", "/api/governance");
    const act = (r, what) => guarded(async (ev) => {
      ev.stopPropagation();
      if (!confirm(`${what} action #${r.id} (${r.action} on ${r.target})?`)) return;
      const rec = await api("POST", `/api/governance/${r.id}/${what}`);
      toast(`${what}: ${rec.action} ${rec.result}`);
      route();
    });
    const kill = guarded(async () => {
      const pause = !g.paused;
      if (!confirm(pause ? "Hold every automatic action (the kill switch)?" : "Let automatic actions run again?")) return;
      await api("POST", `/api/governance/${pause ? "pause" : "resume"}`);
      route();
    });
    view(el("h1", {}, "Governance"),
      el("p", {}, "Automatic actions: ", el("strong", { id: "kill-state" }, g.paused ? "held (kill switch on)" : "running"), " ",
        isAdmin() ? el("button", { class: "secondary", onclick: kill }, g.paused ? "Resume" : "Kill switch") : null),
      table(g.actions, [
        ["id", "#"], ["created_at", "When"], ["instance", "Instance"], ["action", "Action"], ["target", "Target"],
        ["by", "By"], ["mode", "Mode", (r) => el("span", { class: statusClass(r.mode) }, r.mode)],
        ["result", "Result", (r) => el("span", { class: statusClass(r.result) }, r.result)], ["error", "Error"],
        ["do", "", (r) => isAdmin() && r.mode === "executed" && r.result === "ok" ? el("button", { class: "secondary", "data-undo": r.id, onclick: act(r, "undo") }, "Undo")
          : isAdmin() && (r.result === "failed" || r.mode === "held") ? el("button", { class: "secondary", onclick: act(r, "retry") }, "Retry") : ""],
      ]));
  },

  async investigate(params) {
    const q = params.q || "";
    const out = el("div");
    const sqlOut = el("div");
    const sql = el("textarea", { id: "sql", spellcheck: "false" }, params.sql || "SELECT instance, app, person, status FROM identities LIMIT 20");
    view(el("h1", {}, "Investigate"),
      el("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); location.hash = "#/investigate?q=" + encodeURIComponent(e.target.q.value); } },
        el("label", {}, "Users, files, activities, grants", el("input", { name: "q", value: q, size: 40 })), el("button", {}, "Search")),
      out,
      el("h2", {}, "Read-only SQL"),
      el("p", { class: "muted" }, "The same limits as cachost query: one statement, nothing written, 5 s of work, 1,000 rows."),
      sql, el("div", { class: "actions" }, el("button", { onclick: guarded(async () => {
        const r = await api("POST", "/api/query", { sql: sql.value });
        sqlOut.replaceChildren(table(r.rows.map((row) => Array.isArray(row) ? Object.fromEntries(r.columns.map((c, i) => [c, row[i]])) : row),
          r.columns.map((c) => [c, c])), r.truncated ? el("p", { class: "muted" }, "first 1,000 rows") : "");
      }) }, "Run")), sqlOut);
    if (q.length >= 2) {
      const r = await api("GET", "/api/search?q=" + encodeURIComponent(q));
      const person = (row) => el("a", { href: `#/person/${encodeURIComponent(String(row.email || row.user || row.actor || "").toLowerCase())}` },
        row.email || row.user || row.actor || "");
      out.replaceChildren(
        el("h2", {}, `Users (${r.users.length})`), table(r.users, [["instance", "Instance"], ["email", "Account", person],
          ["display_name", "Name"], ["status", "Status"], ["is_admin", "Admin"], ["last_login", "Last sign-in"]]),
        el("h2", {}, `Files (${r.files.length})`), table(r.files, [["instance", "Instance"], ["path", "Path"], ["owner", "Owner"],
          ["access_level", "Access"], ["scan_status", "Scan"], ["quarantined", "Quarantined"]]),
        el("h2", {}, `Activities (${r.activities.length})`), table(r.activities, [["instance", "Instance"], ["time", "When"],
          ["actor", "Who", person], ["action", "Action"], ["outcome", "Outcome"], ["ip", "IP"], ["location", "Where"]]),
        el("h2", {}, `Grants (${r.grants.length})`), table(r.grants, [["instance", "Instance"], ["app_name", "App"],
          ["user", "User", person], ["scopes", "Scopes"], ["last_used", "Last used"]]));
    }
  },

  async person(who) {
    const p = await api("GET", `/api/people/${encodeURIComponent(who)}`);
    view(el("h1", {}, p.person),
      el("p", {}, p.left ? el("span", { class: "status bad" }, `left: ${p.left}`) : "No source of truth says this person left."),
      table(p.accounts, [["instance", "Instance"], ["app", "App"], ["email", "Account"], ["status", "Status", (r) => el("span", { class: statusClass(r.status) }, r.status)],
        ["is_admin", "Admin"], ["grants", "Grants"], ["last_login", "Last sign-in"], ["deleted_at", "Gone since"]]));
  },

  async policies() {
    const list = await api("GET", "/api/policies");
    const source = el("pre", { id: "source", hidden: true });
    const setMode = (p) => guarded(async (e) => {
      const mode = e.target.value;
      if (!confirm(`Switch ${p.name} to ${mode}?${mode === "enforce" ? " Its actions will run for real." : ""}`)) { e.target.value = p.mode; return; }
      await api("POST", `/api/policies/${encodeURIComponent(p.name)}`, { mode });
      toast(`${p.name} now in ${mode} mode`);
      route();
    });
    view(el("h1", {}, "Policies"),
      table(list, [["name", "Policy"], ["title", "What it finds"], ["on", "Watches"], ["severity", "Severity"],
        ["mode", "Mode", (p) => isAdmin() ? el("select", { "data-policy": p.name, onclick: (e) => e.stopPropagation(), onchange: setMode(p) },
          ["audit", "enforce"].map((m) => el("option", { value: m, selected: p.mode === m }, m))) : p.mode],
        ["recent_hits", "Alerts"], ["actions", "Actions", (p) => (p.actions || []).join(", ")]],
      guarded(async (p) => {
        const s = await api("GET", `/api/policies/${encodeURIComponent(p.name)}/source`);
        source.textContent = s.source;
        source.hidden = false;
      })),
      source);
  },

  async pictures() {
    const c = await api("GET", "/api/charts?days=30");
    const canvas = (id) => el("canvas", { id, height: 220 });
    view(el("h1", {}, "Pictures"),
      el("div", { class: "grid" },
        el("div", { class: "card" }, el("h2", {}, "Sign-ins per day (successes and failures)"), canvas("signins")),
        el("div", { class: "card" }, el("h2", {}, "Failed sign-ins by country"), canvas("countries")),
        el("div", { class: "card" }, el("h2", {}, "Alerts by severity"), canvas("severity")),
        el("div", { class: "card" }, el("h2", {}, "Files shared outside, by app"), canvas("shared"))));
    if (!window.Chart) return;
    const days = [...new Set(c.signins.map((r) => r.day))];
    const apps = [...new Set(c.signins.map((r) => r.app))];
    const series = [];
    for (const app of apps) {
      for (const kind of ["success", "failure"]) {
        series.push({ label: `${app} ${kind}`, stack: kind, data: days.map((d) => (c.signins.find((r) => r.day === d && r.app === app) || {})[kind] || 0) });
      }
    }
    const opts = { animation: false, responsive: true };
    new Chart(document.getElementById("signins"), { type: "bar", data: { labels: days, datasets: series }, options: { ...opts, scales: { x: { stacked: true }, y: { stacked: true } } } });
    new Chart(document.getElementById("countries"), { type: "bar", data: { labels: c.failures_by_country.map((r) => r.country),
      datasets: [{ label: "failed sign-ins", data: c.failures_by_country.map((r) => r.failures) }] }, options: { ...opts, indexAxis: "y" } });
    new Chart(document.getElementById("severity"), { type: "bar", data: { labels: c.alerts_by_severity.map((r) => r.severity),
      datasets: [{ label: "open", data: c.alerts_by_severity.map((r) => r.open) }, { label: "all", data: c.alerts_by_severity.map((r) => r.total) }] }, options: opts });
    new Chart(document.getElementById("shared"), { type: "bar", data: { labels: c.shared_files.map((r) => r.app),
      datasets: [{ label: "public", data: c.shared_files.map((r) => r.public) }, { label: "external", data: c.shared_files.map((r) => r.external) }] }, options: opts });
  },
};

// Connect an app: its settings (secrets as password fields, never shown again), then the provider's own
// authorization: a consent URL to open, or a token tested at once.
async function connectForm() {
  const apps = await api("GET", "/api/connectors");
  const fields = el("div", { class: "filters" });
  const result = el("p");
  const choose = el("select", { name: "app", onchange: () => draw() }, apps.map((a) => el("option", { value: a.app }, a.title)));
  const name = el("input", { name: "name", placeholder: "acme-okta", required: true });
  function draw() {
    const a = apps.find((x) => x.app === choose.value);
    fields.replaceChildren(...a.settings.map((s) => el("label", { title: s.help || "" }, s.name + (s.required ? " *" : ""),
      el("input", { name: s.name, type: s.secret ? "password" : "text", placeholder: s.example || "", autocomplete: "off" }))));
  }
  draw();
  const form = el("form", { class: "card", id: "connect", onsubmit: guarded(async (e) => {
    e.preventDefault();
    const settings = {};
    for (const i of fields.querySelectorAll("input")) if (i.value !== "") settings[i.name] = i.value;
    await api("POST", "/api/instances", { app: choose.value, name: name.value, settings });
    result.textContent = "Connecting...";
    const r = await api("POST", `/api/instances/${encodeURIComponent(name.value)}/connect`);
    if (r.url) result.replaceChildren("Authorize cachost at the provider: ", el("a", { href: r.url, target: "_blank", rel: "noopener noreferrer" }, r.url));
    else { result.textContent = (r.said || []).join(" "); route(); }
  }) }, el("h2", {}, "Connect an app"), el("div", { class: "filters" }, el("label", {}, "App", choose), el("label", {}, "Name", name)),
    fields, el("button", {}, "Add and connect"), result);
  return el("details", {}, el("summary", {}, "Connect an app"), form);
}

// ---------------------------------------------------------------------------- routing and sign-in

async function route() {
  if (!session) return;
  const [path, query] = (location.hash.slice(1) || "/apps").split("?");
  const [, name, arg] = path.split("/");
  const params = Object.fromEntries(new URLSearchParams(query || ""));
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.getAttribute("href") === `#/${name}`);
  const fn = views[name] || views.apps;
  document.body.dataset.view = name || "apps";
  try { await fn(arg ? decodeURIComponent(arg) : params, params); } catch (e) { view(el("p", { class: "error" }, e.message)); }
  document.body.dataset.ready = name || "apps";
}

function showLogin() {
  session = null;
  document.getElementById("top").hidden = true;
  document.getElementById("view").replaceChildren();
  document.getElementById("login").hidden = false;
}

async function start() {
  document.getElementById("login").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target;
    try {
      session = await api("POST", "/api/login", { name: f.name.value, password: f.password.value });
      f.password.value = "";
      document.getElementById("login-error").textContent = "";
      signedIn();
    } catch (err) {
      document.getElementById("login-error").textContent = err.message;
    }
  });
  document.getElementById("logout").addEventListener("click", async () => {
    await api("POST", "/api/logout").catch(() => {});
    showLogin();
  });
  window.addEventListener("hashchange", route);
  try { session = await api("GET", "/api/session"); signedIn(); } catch { showLogin(); }
}

function signedIn() {
  document.getElementById("login").hidden = true;
  document.getElementById("top").hidden = false;
  document.getElementById("who").textContent = `${session.user} (${session.role})`;
  route();
}

start();
