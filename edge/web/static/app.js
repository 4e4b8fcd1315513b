// The site controller's local page: plain JS, no build step. Data from /api/v1 (session cookie + CSRF token),
// live snapshots once a second over server-sent events, charts drawn as inline SVG.
"use strict";

const state = { csrf: null, loggedIn: false, readOnly: false, live: {}, series: {}, chargers: [], groups: [] };
const PHASES = ["L1", "L2", "L3"];
const COLOURS = { L1: "#8d5524", L2: "#111111", L3: "#8a8a8a" };
const LIVE_SPAN = 15 * 60 * 1000, DAY_SPAN = 24 * 3600 * 1000;
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const ns = ["svg", "polyline", "line", "text", "rect", "g"].includes(tag) ? "http://www.w3.org/2000/svg" : null;
  const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const resp = await fetch(path, { method, headers, credentials: "same-origin",
                                   body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await resp.json().catch(() => ({}));
  if (resp.status === 401 && path !== "/web/login") showLogin();
  if (!resp.ok) throw new Error(data.error || `${resp.status}`);
  return data;
}

// -- login -----------------------------------------------------------------------------------------------

async function boot() {
  const who = await api("GET", "/api/v1/web/session");
  $("#site-name").textContent = who.name || who.site;
  state.csrf = who.csrf; state.loggedIn = who.logged_in; state.readOnly = who.read_only;
  if (!who.password_set) $("#login-note").textContent =
    "No installer password is set: run `edgectl web password` on the box, then log in here.";
  if (state.loggedIn || state.readOnly) start(); else showLogin(who.password_set);
}

function showLogin() {
  $("#login").hidden = false; $("#main").hidden = true; $("#logout").hidden = true;
  $("#who-text").textContent = "not logged in";
  if (state.source) { state.source.close(); state.source = null; }
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#login-error").textContent = "";
  try {
    const r = await api("POST", "/web/login", { password: $("#password").value });
    $("#password").value = "";
    state.csrf = r.csrf; state.loggedIn = true; state.readOnly = false;
    start();
  } catch (e) { $("#login-error").textContent = e.message; }
});

$("#logout").addEventListener("click", async () => {
  await api("POST", "/web/logout").catch(() => {});
  state.loggedIn = false; state.csrf = null; showLogin();
});

function start() {
  $("#login").hidden = true; $("#main").hidden = false;
  document.body.classList.toggle("viewer", !state.loggedIn);
  $("#logout").hidden = !state.loggedIn;
  $("#who-text").textContent = state.loggedIn ? "installer" : "read-only";
  loadSeries(); refreshLists();
  if (state.loggedIn) pollCommission();
  if (!state.timers) state.timers = [setInterval(refreshLists, 10000), setInterval(loadSeries, 60000)];
  if (!state.source) {
    state.source = new EventSource("/api/v1/web/live");
    state.source.addEventListener("snapshot", (ev) => render(JSON.parse(ev.data)));
  }
}

// -- the site: phases against limits, live and history -------------------------------------------------

async function loadSeries() {
  const since = new Date(Date.now() - DAY_SPAN).toISOString();
  const rows = await api("GET", `/api/v1/dlm/series?since=${encodeURIComponent(since)}&limit=50000`).catch(() => []);
  const series = {};
  for (const r of rows) {
    const c = series[r.circuit] ??= { L1: [], L2: [], L3: [], limit: r.limit_a };
    const v = r.metered_mean ?? r.metered_max;
    if (v !== null && v !== undefined) c[`L${r.phase}`].push([Date.parse(r.at), v]);
    c.limit = r.limit_a;
  }
  state.series = series;
}

function chart(points, limit, span, now, title, cls) {
  const W = 600, H = 150, pad = 28;
  const top = Math.max(limit || 0, ...PHASES.flatMap((p) => points[p].map((x) => x[1])), 1) * 1.1;
  const x = (t) => pad + (W - pad - 4) * (1 - (now - t) / span), y = (v) => H - 16 - (H - 26) * (v / top);
  const svg = el("svg", { class: `chart ${cls}`, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title,
                          preserveAspectRatio: "none" });
  svg.append(el("text", { x: pad, y: 10 }, title));
  for (const frac of [0, 0.5, 1]) {
    svg.append(el("text", { x: 2, y: y(top / 1.1 * frac) + 3 }, `${Math.round(top / 1.1 * frac)}`));
  }
  if (limit) svg.append(el("line", { x1: pad, x2: W - 4, y1: y(limit), y2: y(limit), stroke: "#c62828",
                                     "stroke-dasharray": "5 4", class: "limit" }));
  PHASES.forEach((p, i) => {
    const pts = points[p].filter(([t]) => now - t <= span);
    if (pts.length) svg.append(el("polyline", { fill: "none", stroke: COLOURS[p], "stroke-width": 1.5,
      "data-phase": p, points: pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ") }));
    const last = pts.length ? pts[pts.length - 1][1] : null;
    svg.append(el("text", { x: pad + 70 * i, y: H - 3, class: "now", "data-phase": p, fill: COLOURS[p] },
                  `${p} ${last === null ? "–" : last.toFixed(1)} A`));
  });
  return svg;
}

function render(snap) {
  $("#live-at").textContent = new Date(snap.at).toLocaleTimeString();
  const alerts = $("#alerts"); alerts.replaceChildren(...(snap.alerts.length
    ? snap.alerts.map((a) => el("li", {}, a)) : [el("li", { class: "none" }, "no alerts")]));
  const now = Date.parse(snap.at);
  const circuits = snap.dlm ? snap.dlm.circuits : [];
  $("#circuits").replaceChildren(...(circuits.length ? circuits.map((c) => {
    const live = state.live[c.id] ??= { L1: [], L2: [], L3: [] };
    for (const ph of c.phases) if (ph.metered !== null) {
      live[ph.phase].push([now, ph.metered]);
      while (live[ph.phase].length && now - live[ph.phase][0][0] > LIVE_SPAN) live[ph.phase].shift();
    }
    const hist = state.series[c.id] || { L1: [], L2: [], L3: [] };
    const recent = Object.fromEntries(PHASES.map((p) => [p, [...hist[p].filter(([t]) => t < (live[p][0] || [now])[0]),
                                                             ...live[p]]]));
    return el("div", { class: `circuit${c.failsafe ? " failsafe" : ""}`, id: `circuit-${c.id}` },
      el("h3", {}, `${c.id} — limit ${c.limit} A`, c.failsafe ? el("span", { class: "bad" }, " FAILSAFE") : "",
         c.cap ? el("span", { class: "warn" }, ` capped at ${c.cap.max_current} A: ${c.cap.reason}`) : ""),
      el("div", { class: "phases" }, c.phases.map((ph) => phaseBar(ph, c.limit))),
      el("div", { class: "charts" }, chart(recent, c.limit, LIVE_SPAN, now, "last 15 minutes (A)", "live"),
         chart(hist, c.limit, DAY_SPAN, now, "last 24 hours (A)", "day")));
  }) : [el("p", {}, snap.dlm ? "no circuits" : "load management is off (no [[circuits]] in the site config)")]));
  const meters = snap.dlm ? snap.dlm.meters : [];
  $("#meters tbody").replaceChildren(...meters.map((m) => el("tr", {}, el("td", {}, m.circuit), el("td", {}, m.meter),
    ...[0, 1, 2].map((i) => el("td", {}, m.current ? m.current[i].toFixed(1) : "–")),
    el("td", {}, m.age_s === null ? "never" : `${m.age_s.toFixed(1)} s`),
    el("td", { class: m.failsafe ? "bad" : "ok" }, m.failsafe ? "failsafe" : "ok"))));
  state.snapshot = snap;
  renderConnectors();
}

function phaseBar(ph, limit) {
  const used = ph.metered ?? (ph.unmanaged + ph.reserved + ph.allocated);
  const frac = Math.min(1, used / limit);
  const cls = used > limit ? "bad" : frac > 0.9 ? "warn" : "ok";
  return el("div", { class: "phase", "data-phase": ph.phase },
    el("div", {}, el("b", {}, ph.phase), " ", el("span", { class: cls }, `${used.toFixed(1)} / ${limit} A`),
       el("small", {}, ` cars ${ph.allocated.toFixed(1)} A`)),
    el("div", { class: "bar" }, el("svg", { viewBox: "0 0 100 10", preserveAspectRatio: "none" },
      el("rect", { x: 0, y: 0, height: 10, width: (frac * 100).toFixed(1),
                   fill: cls === "bad" ? "#c62828" : cls === "warn" ? "#b26a00" : "#2e7d32" }))));
}

// -- chargers and connectors ------------------------------------------------------------------------------

function renderConnectors() {
  const snap = state.snapshot || { dlm: null, sessions: [], chargers: [] };
  const keyed = (c) => [`${c.charger_id}/${c.connector_id}`, c];
  const dlm = Object.fromEntries((snap.dlm ? snap.dlm.connectors : []).map(keyed));
  const sessions = Object.fromEntries(snap.sessions.map((s) => [`${s.charger_id}/${s.connector_id}`, s]));
  const live = Object.fromEntries(snap.chargers.map((c) => [c.id, c]));
  const rows = [];
  for (const ch of state.chargers) {
    const conns = ch.connectors.length ? ch.connectors : [{ connector_id: 0, status: ch.hardware_status }];
    for (const c of conns) {
      if (c.connector_id === 0 && ch.connectors.length > 1) continue;
      const key = `${ch.id}/${c.connector_id}`, d = dlm[key], s = sessions[key];
      const conn = live[ch.id] ? live[ch.id].connection : ch.connection_status;
      rows.push(el("tr", { "data-key": key }, el("td", {}, ch.id), el("td", {}, `${c.connector_id}`),
        el("td", {}, (live[ch.id] && live[ch.id].statuses[`${c.connector_id}`]) || c.status || "–"),
        el("td", { class: (live[ch.id] || ch).connected ? "ok" : "bad" }, conn),
        el("td", {}, d && d.limit !== null ? `${d.limit} A` : "–"), el("td", { class: "why" }, d ? d.why : ""),
        el("td", {}, s ? `#${s.id} ${s.id_tag}` : ""), el("td", {}, s && s.kw !== null ? s.kw.toFixed(2) : ""),
        el("td", {}, s && s.kwh !== null ? s.kwh.toFixed(2) : "")));
    }
  }
  $("#connectors tbody").replaceChildren(...rows);
}

const ACTIONS = {
  unlock: (c) => ["UnlockConnector", { connectorId: c }],
  soft: () => ["Reset", { type: "Soft" }],
  hard: () => ["Reset", { type: "Hard" }],
  start: (c, tag) => ["RemoteStartTransaction", { connectorId: c, idTag: tag }],
  stop: (c, tag) => ["RemoteStopTransaction", { transactionId: Number(tag) }],
  operative: (c) => ["ChangeAvailability", { connectorId: c, type: "Operative" }],
  inoperative: (c) => ["ChangeAvailability", { connectorId: c, type: "Inoperative" }],
};

$("#action-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const charger = $("#action-charger").value, connector = Number($("#action-connector").value);
  const [action, params] = ACTIONS[$("#action-kind").value](connector, $("#action-tag").value.trim());
  const out = $("#action-result");
  out.textContent = `${action} to ${charger}…`;
  try {
    const r = await api("POST", `/api/v1/chargers/${encodeURIComponent(charger)}/commands/${action}`,
                        { params, reason: $("#action-reason").value });
    out.textContent = `${action} to ${charger}: ${r.outcome}${r.response ? " " + JSON.stringify(r.response) : ""}`;
  } catch (e) { out.textContent = `${action} to ${charger} failed: ${e.message}`; }
});

// -- sessions, records, authorizations, tokens ---------------------------------------------------------------

const time = (iso) => iso ? new Date(iso).toLocaleString() : "";

async function refreshLists() {
  const [chargers, sessions, cdrs, auths, tokens, model] = await Promise.all([
    api("GET", "/api/v1/chargers"), api("GET", "/api/v1/sessions?limit=20"),
    api("GET", "/api/v1/cdrs?limit=20&newest=1").catch(() => []),
    api("GET", "/api/v1/authorizations?limit=30").catch(() => []),
    api("GET", "/api/v1/tokens").catch(() => []), api("GET", "/api/v1/auth/model").catch(() => null)]);
  state.chargers = chargers;
  const pick = $("#action-charger"), chosen = pick.value;
  pick.replaceChildren(...chargers.map((c) => el("option", { value: c.id }, c.id)));
  if (chosen) pick.value = chosen;
  renderConnectors();
  $("#session-list tbody").replaceChildren(...sessions.map((s) => el("tr", {}, el("td", {}, `${s.id}`),
    el("td", {}, `${s.charger_id}/${s.connector_id}`), el("td", {}, s.id_tag), el("td", {}, time(s.start_time)),
    el("td", {}, time(s.stop_time)), el("td", {}, s.energy_wh === null ? "" : (s.energy_wh / 1000).toFixed(2)),
    el("td", {}, s.state))));
  $("#cdr-list tbody").replaceChildren(...cdrs.map((r) => {
    const d = r.document || r;
    return el("tr", {}, el("td", {}, r.id || d.id), el("td", {}, d.charger_id ?? r.charger_id ?? ""),
      el("td", {}, d.user_group ?? r.user_group ?? ""), el("td", {}, time(d.start ?? d.start_time ?? r.start)),
      el("td", {}, `${d.energy_kwh ?? r.energy_kwh ?? ""}`),
      el("td", {}, `${d.total_cost?.incl_vat ?? d.total ?? r.total ?? ""}`), el("td", {}, r.status ?? d.status ?? ""));
  }));
  if (model) {
    state.groups = (model.document.user_groups || []).map((g) => g.id || g.name);
    for (const sel of [$("#learn-group"), $("#token-group")]) {
      const was = sel.value;
      sel.replaceChildren(...state.groups.map((g) => el("option", { value: g }, g)));
      if (was) sel.value = was;
    }
  }
  const known = new Set(tokens.map((t) => t.id_tag));
  $("#auth-list tbody").replaceChildren(...auths.map((a) => el("tr", {}, el("td", {}, time(a.at)),
    el("td", {}, a.id_tag), el("td", {}, a.charger_id || ""), el("td", {}, a.status),
    el("td", {}, a.token === null && a.id_tag && !known.has(a.id_tag)
      ? el("button", { class: "small installer learn", "data-tag": a.id_tag, on: { click: () => learn(a.id_tag) } },
           "learn this card") : ""))));
  $("#token-list tbody").replaceChildren(...tokens.map((t) => el("tr", { "data-tag": t.id_tag },
    el("td", {}, t.id_tag), el("td", {}, t.user || ""), el("td", {}, t.user_group || ""),
    el("td", { class: t.status === "Active" ? "ok" : "bad" }, t.status),
    el("td", {}, el("button", { class: "small installer",
                                on: { click: () => setBlocked(t.id_tag, t.status === "Active") } },
                    t.status === "Active" ? "block" : "unblock")))));
}

function tokenEntry(tag, group) {
  // Whole hex bytes (with or without separators) are an RFID card; anything else an opaque id tag (as edgectl).
  const digits = tag.replace(/[:\-. ]/g, "");
  const uid = digits.length && digits.length % 2 === 0 && /^[0-9a-fA-F]+$/.test(digits);
  return { [uid ? "uid" : "id_tag"]: tag, user_group: group, user: "" };
}

async function learn(tag) {
  await api("POST", "/api/v1/tokens", tokenEntry(tag, $("#learn-group").value)).catch((e) => alert(e.message));
  refreshLists();
}

async function setBlocked(tag, block) {
  await api("POST", `/api/v1/tokens/${encodeURIComponent(tag)}/${block ? "block" : "unblock"}`)
    .catch((e) => alert(e.message));
  refreshLists();
}

$("#token-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  await api("POST", "/api/v1/tokens", tokenEntry($("#token-tag").value.trim(), $("#token-group").value))
    .catch((e) => alert(e.message));
  $("#token-tag").value = "";
  refreshLists();
});

// -- commissioning: the same checks as `edgectl commission`, run in the edge; the page polls the run -------------

const MARKS = { pass: "ok", warn: "warn", fail: "FAIL", skip: "skip" };

function renderCommission(run) {
  const status = $("#commission-status");
  const busy = run && run.state === "running";
  for (const b of [$("#commission-run"), $("#rotation-ask"), $("#rotation-yes")]) b.disabled = busy;
  if (!run) { status.textContent = "No run yet."; return; }
  const took = ((Date.parse(run.finished_at || new Date().toISOString()) - Date.parse(run.started_at)) / 1000);
  const failed = run.checks.filter((c) => c.status === "fail").length;
  const warned = run.checks.filter((c) => c.status === "warn").length;
  status.className = run.state === "running" ? "" : run.error || failed ? "bad" : "ok";
  status.textContent = run.state === "running" ? `Running (${took.toFixed(0)} s): ${run.stage}…`
    : run.error ? `The run failed: ${run.error}`
    : `${failed ? "FAILED" : "OK"}: ${failed} failure(s), ${warned} warning(s), in ${took.toFixed(0)} s` +
      (run.detect_rotation ? ", with the phase-rotation detection" : "");
  const progress = $("#commission-progress");
  progress.replaceChildren(...run.progress.map((p) => el("li", {},
    el("small", {}, new Date(p.at).toLocaleTimeString()), ` ${p.text}`)));
  progress.scrollTop = progress.scrollHeight;
  // Name over detail in one cell: reads on a phone as well as on a desk.
  $("#commission-checks tbody").replaceChildren(...run.checks.map((c) => el("tr", { "data-check": c.name,
      "data-status": c.status }, el("td", {}, el("span", { class: `badge ${c.status}` }, MARKS[c.status] || c.status)),
    el("td", {}, el("b", {}, c.name), el("div", {}, c.detail),
       c.fix && c.status !== "pass" ? el("div", { class: "fix" }, c.fix) : ""))));
  $("#commission-rotation").replaceChildren(...run.rotation.map((r) => {
    const lines = r.config_lines.join("\n");
    return el("div", { class: `rotation verdict-${r.verdict}`, "data-charger": r.charger_id },
      el("div", {}, el("b", {}, `${r.charger_id}/${r.connector_id}`), " ",
         el("span", { class: `badge ${r.verdict === "ok" ? "pass" : r.verdict === "mismatch" ? "fail" : "warn"}` },
            r.verdict), " ", r.detail),
      lines ? el("div", {}, el("small", {}, "corrected lines for the charger's [[chargers]] table of site.toml:"),
                 el("pre", { class: "config-lines" }, lines),
                 el("button", { type: "button", class: "small copy", on: { click: (ev) => copy(lines, ev.target) } },
                    "Copy")) : "");
  }));
}

async function copy(text, button) {
  // The clipboard needs a secure context (https, or the box's own loopback); else the text is selected to copy.
  try { await navigator.clipboard.writeText(text); button.textContent = "Copied"; }
  catch (e) {
    const range = document.createRange(); range.selectNodeContents(button.previousElementSibling);
    getSelection().removeAllRanges(); getSelection().addRange(range);
    button.textContent = "Selected: copy it";
  }
}

async function pollCommission() {
  clearTimeout(state.commissionTimer);
  const latest = await api("GET", "/api/v1/commission/run").catch(() => null);
  if (!latest) return;
  $("#rotation-seconds").textContent = `${Math.round(latest.step_seconds)}`;
  renderCommission(latest.run);
  if (latest.run && latest.run.state === "running" && state.loggedIn)
    state.commissionTimer = setTimeout(pollCommission, 1000);
}

async function startCommission(detectRotation) {
  const reason = $("#commission-reason");
  if (!reason.reportValidity()) return;
  $("#rotation-confirm").hidden = true;
  try {
    renderCommission(await api("POST", "/api/v1/commission/run",
                               { detect_rotation: detectRotation, consent: detectRotation, reason: reason.value }));
  } catch (e) { $("#commission-status").className = "bad"; $("#commission-status").textContent = e.message; }
  pollCommission();
}

$("#commission-form").addEventListener("submit", (ev) => { ev.preventDefault(); startCommission(false); });
$("#rotation-ask").addEventListener("click", () => {
  if ($("#commission-reason").reportValidity()) $("#rotation-confirm").hidden = false;
});
$("#rotation-no").addEventListener("click", () => { $("#rotation-confirm").hidden = true; });
$("#rotation-yes").addEventListener("click", () => startCommission(true));

boot();
