// The pool dashboard's live parts: cards and charts updated from Socket.IO `pool_update`
// (namespace /admin), a live/stale indicator, the chart window selector backed by
// /admin/api/metrics, and quick-action forms sent without leaving the page.
//
// The page works without this script (server-rendered cards, plain form posts); everything
// here is an enhancement. Values coming from the server are only ever written with
// textContent, never innerHTML, so nothing a user typed can become markup.
(function () {
  "use strict";

  var POLL_WHEN_STALE_MS = 10000;
  var WATCH_JOB_MS = 1500;
  var WATCH_JOB_MAX_MS = 180000;
  var METRICS_DEBOUNCE_MS = 1500;

  var dataNode = document.getElementById("pool-data");
  if (!dataNode) return;

  var state = {
    payload: JSON.parse(dataNode.textContent),
    charts: {},
    chartsEl: document.getElementById("charts"),
    window: null,
    socket: null,
    pollTimer: null,
    watchTimer: null,
    metricsTimer: null,
  };
  state.window = state.chartsEl ? state.chartsEl.dataset.window : "24h";
  window.poolDashboard = state; // for the browser tests and for curious operators

  // -- formatting (mirrors templates/admin/_macros.html) -------------------------------------

  function get(obj, path) {
    return path.split(".").reduce(function (o, key) {
      return o === null || o === undefined ? undefined : o[key];
    }, obj);
  }

  function fmt(value, kind) {
    if (value === null || value === undefined) return "–";
    if (kind === "pct") return Math.round(value * 100) + "%";
    if (kind === "ms") return Number(value).toFixed(1) + " ms";
    if (kind === "time") return String(value).slice(11, 19);
    return String(value);
  }

  // -- cards ---------------------------------------------------------------------------------

  function toggle(el, cls, on) {
    if (el) el.classList.toggle(cls, Boolean(on));
  }

  function renderAlerts(alerts) {
    var list = document.getElementById("alerts-list");
    if (!list || !alerts) return;
    list.replaceChildren();
    if (!alerts.length) {
      var empty = document.createElement("li");
      empty.className = "empty";
      empty.textContent = "No active alerts.";
      list.appendChild(empty);
      return;
    }
    alerts.forEach(function (alert) {
      var li = document.createElement("li");
      li.className = "alert-item";
      var strong = document.createElement("strong");
      strong.textContent = alert.title || alert.incident;
      var badge = document.createElement("span");
      badge.className = "badge badge--bad";
      badge.textContent = alert.state;
      var sub = document.createElement("span");
      sub.className = "muted";
      var since = "since " + String(alert.since).slice(0, 19).replace("T", " ");
      sub.textContent = alert.message ? alert.message + " · " + since : since;
      li.append(strong, " ", badge, document.createElement("br"), sub);
      list.appendChild(li);
    });
  }

  function applyPayload(payload) {
    if (!payload || !payload.pools) return;
    state.payload = payload;
    document.querySelectorAll("[data-bind]").forEach(function (el) {
      var value = get(payload, el.dataset.bind);
      if (value === undefined) return; // a payload without that part keeps the last value
      el.textContent = fmt(value, el.dataset.format);
      if (el.dataset.format === "time") el.setAttribute("datetime", value);
    });
    var master = payload.pools.master;
    var card = document.querySelector('[data-card="master"]');
    toggle(card, "metric--bad", master.empty);
    toggle(card, "metric--warn", master.low && !master.empty);
    if (payload.ops) {
      toggle(document.querySelector('[data-card="alerts"]'), "metric--bad", payload.ops.alerts_active > 0);
      toggle(document.querySelector('[data-card="workers"]'), "metric--warn", payload.ops.workers === 0);
      renderAlerts(payload.ops.alerts);
    }
    var level = state.charts.level;
    if (level) {
      // The newest bucket is "now": show the new level at once, the rest follows with the
      // next metrics fetch.
      var data = level.data.datasets[0].data;
      if (data.length) data[data.length - 1] = master.ready;
      // The target refills work to: demand-sized when that is on, else the configured one.
      var target = payload.demand && payload.demand.master ? payload.demand.master.value : master.target;
      level.data.datasets[1].data = data.map(function () { return target; });
      level.update("none");
    }
    document.dispatchEvent(new CustomEvent("pool:update", { detail: payload }));
  }

  // -- live indicator and Socket.IO ------------------------------------------------------------

  var indicator = document.getElementById("live-indicator");
  var LABELS = {
    connecting: "connecting…",
    live: "live",
    stale: "stale: reconnecting (polling meanwhile)",
    refused: "stale: live updates refused (signed out?)",
    offline: "not live: live updates unavailable",
  };

  function setLive(name) {
    if (!indicator) return;
    indicator.dataset.state = name;
    indicator.querySelector(".live__label").textContent = LABELS[name];
    if (name === "live") stopPolling();
    else if (name !== "connecting") startPolling();
  }

  function fetchJSON(url, options) {
    options = options || {};
    options.headers = Object.assign({ Accept: "application/json" }, options.headers || {});
    options.credentials = "same-origin";
    return fetch(url, options).then(function (response) {
      return response.json().then(function (body) {
        return { ok: response.ok, status: response.status, body: body };
      });
    });
  }

  function pollOnce() {
    fetchJSON("/admin/api/pool").then(function (r) {
      if (r.ok) applyPayload(r.body);
    }).catch(function () { /* still stale; the next tick retries */ });
  }

  function startPolling() {
    if (state.pollTimer === null) state.pollTimer = window.setInterval(pollOnce, POLL_WHEN_STALE_MS);
  }

  function stopPolling() {
    if (state.pollTimer !== null) window.clearInterval(state.pollTimer);
    state.pollTimer = null;
  }

  function connect() {
    if (typeof window.io !== "function") {
      setLive("offline");
      return;
    }
    setLive("connecting");
    var socket = window.io("/admin", { transports: ["websocket", "polling"] });
    state.socket = socket;
    socket.on("connect", function () { setLive("live"); });
    socket.on("disconnect", function () { setLive("stale"); });
    socket.on("connect_error", function () {
      // The server refuses non-admins; socket.active is false then and it will not retry.
      setLive(socket.active ? "stale" : "refused");
    });
    socket.on("pool_update", function (payload) {
      applyPayload(payload);
      scheduleMetrics();
    });
  }

  // -- charts --------------------------------------------------------------------------------

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function shortLabel(iso, bucketSeconds) {
    var d = new Date(iso);
    var hh = String(d.getUTCHours()).padStart(2, "0");
    var mm = String(d.getUTCMinutes()).padStart(2, "0");
    if (bucketSeconds >= 6 * 3600) return d.toISOString().slice(5, 10) + " " + hh + "h";
    return hh + ":" + mm;
  }

  function makeCharts() {
    if (!state.chartsEl || typeof window.Chart !== "function") return false;
    var Chart = window.Chart;
    var text = cssVar("--muted", "#5d6678");
    var grid = cssVar("--border", "#d9dde5");
    Chart.defaults.color = text;
    Chart.defaults.borderColor = grid;
    Chart.defaults.animation = false;
    Chart.defaults.maintainAspectRatio = false;
    var accent = cssVar("--accent", "#b3261e");
    var info = cssVar("--info", "#1f5aa6");
    var ok = cssVar("--ok", "#1e7a46");
    var warn = cssVar("--warn", "#8a5a00");

    function line(id, datasets, extra) {
      var canvas = document.getElementById(id);
      return new Chart(canvas, Object.assign({
        type: "line",
        data: { labels: [], datasets: datasets },
        options: { scales: { y: { beginAtZero: true } }, plugins: { legend: { position: "bottom" } } },
      }, extra || {}));
    }

    state.charts.level = line("chart-level", [
      { label: "ready", data: [], borderColor: ok, backgroundColor: ok, stepped: true, pointRadius: 0 },
      { label: "target", data: [], borderColor: text, borderDash: [6, 4], pointRadius: 0 },
    ]);
    state.charts.latency = line("chart-latency", [
      { label: "p50", data: [], borderColor: info, backgroundColor: info, spanGaps: true },
      { label: "p95", data: [], borderColor: warn, backgroundColor: warn, spanGaps: true },
      { label: "p99", data: [], borderColor: accent, backgroundColor: accent, spanGaps: true },
    ]);
    state.charts.seeding = new Chart(document.getElementById("chart-seeding"), {
      type: "bar",
      data: {
        labels: [],
        datasets: [
          { label: "average", data: [], backgroundColor: info },
          { label: "p95", data: [], backgroundColor: warn },
        ],
      },
      options: { scales: { y: { beginAtZero: true } }, plugins: { legend: { position: "bottom" } } },
    });
    state.charts.assignments = new Chart(document.getElementById("chart-assignments"), {
      type: "bar",
      data: {
        labels: [],
        datasets: [
          { label: "pool hits", data: [], backgroundColor: ok },
          { label: "fallbacks", data: [], backgroundColor: accent },
          // Creates refused by the per-user limit: a bar of their own, not stacked on claims.
          { label: "throttled", data: [], backgroundColor: warn, stack: "refused" },
        ],
      },
      options: {
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
        plugins: { legend: { position: "bottom" } },
      },
    });
    return true;
  }

  function renderMetrics(m) {
    var labels = m.labels.map(function (iso) { return shortLabel(iso, m.bucket_s); });
    var c = state.charts;
    c.level.data.labels = labels;
    c.level.data.datasets[0].data = m.pool_level.ready;
    c.level.data.datasets[1].data = labels.map(function () { return m.pool_level.target; });
    c.latency.data.labels = labels;
    c.latency.data.datasets[0].data = m.latency_ms.p50;
    c.latency.data.datasets[1].data = m.latency_ms.p95;
    c.latency.data.datasets[2].data = m.latency_ms.p99;
    var methods = Object.keys(m.seeding_by_method).sort();
    c.seeding.data.labels = methods;
    c.seeding.data.datasets[0].data = methods.map(function (k) { return m.seeding_by_method[k].avg; });
    c.seeding.data.datasets[1].data = methods.map(function (k) { return m.seeding_by_method[k].p95; });
    c.assignments.data.labels = labels;
    c.assignments.data.datasets[0].data = m.assignments.pool_hits;
    c.assignments.data.datasets[1].data = m.assignments.fallbacks;
    c.assignments.data.datasets[2].data = m.assignments.throttled || [];
    Object.keys(c).forEach(function (k) { c[k].update("none"); });
    state.chartsEl.dataset.loadedWindow = m.window;
    state.metrics = m;
  }

  function loadMetrics() {
    if (!state.charts.level) return Promise.resolve();
    var url = state.chartsEl.dataset.metricsUrl + "?window=" + encodeURIComponent(state.window);
    return fetchJSON(url).then(function (r) {
      if (r.ok) renderMetrics(r.body);
    }).catch(function () { /* keep the last charts */ });
  }

  function scheduleMetrics() {
    if (state.metricsTimer !== null) return;
    state.metricsTimer = window.setTimeout(function () {
      state.metricsTimer = null;
      loadMetrics();
    }, METRICS_DEBOUNCE_MS);
  }

  function wireWindowSelector() {
    document.querySelectorAll("[data-window]").forEach(function (link) {
      if (link.tagName !== "A") return;
      link.addEventListener("click", function (event) {
        event.preventDefault();
        state.window = link.dataset.window;
        document.querySelectorAll("a[data-window]").forEach(function (other) {
          if (other === link) other.setAttribute("aria-current", "true");
          else other.removeAttribute("aria-current");
        });
        var url = new URL(window.location.href);
        url.searchParams.set("window", state.window);
        window.history.replaceState(null, "", url);
        loadMetrics();
      });
    });
  }

  // -- quick actions -------------------------------------------------------------------------

  var resultEl = document.getElementById("action-result");

  function showResult(body, ok) {
    if (!resultEl) return;
    resultEl.hidden = false;
    resultEl.className = "action-result flash flash--" + (ok ? "success" : "error");
    resultEl.textContent = body && body.message ? body.message : ok ? "Done." : "The action failed.";
  }

  function logAction(body, ok) {
    var log = document.querySelector('[data-testid="action-log"]');
    if (!log || !body || !body.action) return;
    var empty = log.querySelector(".empty");
    if (empty) empty.remove();
    var li = document.createElement("li");
    var badge = document.createElement("span");
    badge.className = "badge" + (ok ? "" : " badge--bad");
    badge.textContent = String(body.action).replace(/_/g, " ");
    var when = document.createElement("span");
    when.className = "muted";
    when.textContent = " · just now";
    li.append(badge, " " + body.message, when);
    log.prepend(li);
  }

  // After an action queued a job, follow it until the queue is idle again. Workers announce
  // their progress with pool_update; this is the safety net for an update that was missed
  // (a reconnect, a worker that cannot reach the message queue), and it stops by itself.
  function busy(payload) {
    var ops = payload && payload.ops;
    if (!ops) return false;
    return (ops.jobs_queued || 0) + (ops.jobs_started || 0) + (ops.building || 0) > 0;
  }

  function watchJob() {
    if (state.watchTimer !== null) window.clearTimeout(state.watchTimer);
    var deadline = Date.now() + WATCH_JOB_MAX_MS;
    function tick() {
      fetchJSON("/admin/api/pool").then(function (r) {
        if (r.ok) applyPayload(r.body);
        if (r.ok && !busy(r.body)) {
          state.watchTimer = null;
          scheduleMetrics();
          return;
        }
        state.watchTimer = Date.now() < deadline ? window.setTimeout(tick, WATCH_JOB_MS) : null;
      }).catch(function () {
        state.watchTimer = Date.now() < deadline ? window.setTimeout(tick, WATCH_JOB_MS) : null;
      });
    }
    state.watchTimer = window.setTimeout(tick, WATCH_JOB_MS);
  }

  function wireActions() {
    document.querySelectorAll("form[data-action]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var question = form.dataset.confirm;
        if (question && !window.confirm(question)) return;
        var button = form.querySelector("[type=submit]");
        if (button) button.disabled = true;
        fetchJSON(form.action, { method: "POST", body: new FormData(form) })
          .then(function (r) {
            showResult(r.body, r.ok);
            if (r.body && r.body.action) logAction(r.body, r.ok);
            if (r.body && r.body.pool) applyPayload(r.body.pool);
            if (r.ok && r.body && r.body.job_id) watchJob();
            if (r.ok) {
              form.querySelectorAll("input[type=checkbox]").forEach(function (box) { box.checked = false; });
            }
          })
          .catch(function () { showResult({ message: "Could not reach the server." }, false); })
          .finally(function () { if (button) button.disabled = false; });
      });
    });
  }

  // -- start -----------------------------------------------------------------------------------

  var note = document.getElementById("charts-note");
  if (makeCharts()) {
    if (note) note.hidden = true;
    loadMetrics();
  }
  wireWindowSelector();
  wireActions();
  connect();
})();
