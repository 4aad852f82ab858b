// The analytics page's charts, drawn with the vendored Chart.js from the figures the server
// embedded in #analytics-data (the same JSON /admin/api/analytics serves). Without
// JavaScript the page still shows its cards and the recommendation.
(function () {
  "use strict";

  var dataNode = document.getElementById("analytics-data");
  if (!dataNode || typeof window.Chart !== "function") return;
  var data = JSON.parse(dataNode.textContent);
  var Chart = window.Chart;

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  var text = cssVar("--muted", "#5d6678");
  Chart.defaults.color = text;
  Chart.defaults.borderColor = cssVar("--border", "#d9dde5");
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  var ok = cssVar("--ok", "#1e7a46");
  var accent = cssVar("--accent", "#b3261e");
  var info = cssVar("--info", "#1f5aa6");

  function stacked(id, labels, series) {
    return new Chart(document.getElementById(id), {
      type: "bar",
      data: {
        labels: labels,
        datasets: [
          { label: "pool hits", data: series.pool_hits, backgroundColor: ok },
          { label: "fallbacks", data: series.fallbacks, backgroundColor: accent },
        ],
      },
      options: {
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
        plugins: { legend: { position: "bottom" } },
      },
    });
  }

  var charts = {};
  charts.byHour = stacked("chart-by-hour", data.hours, data.by_hour);
  charts.byWeekday = stacked("chart-by-weekday", data.weekdays, data.by_weekday);
  charts.timeInPool = new Chart(document.getElementById("chart-time-in-pool"), {
    type: "bar",
    data: {
      labels: data.time_in_pool.labels,
      datasets: [{ label: "campaigns handed out", data: data.time_in_pool.counts, backgroundColor: info }],
    },
    options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } }, plugins: { legend: { display: false } } },
  });
  var rec = data.recommendation;
  charts.recommended = new Chart(document.getElementById("chart-recommended"), {
    type: "line",
    data: {
      labels: data.hours,
      datasets: [
        { label: "recommended", data: rec.by_hour.targets, borderColor: ok, backgroundColor: ok, stepped: true },
        {
          label: "configured",
          data: data.hours.map(function () { return rec.configured_target; }),
          borderColor: text,
          borderDash: [6, 4],
          pointRadius: 0,
        },
      ],
    },
    options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } }, plugins: { legend: { position: "bottom" } } },
  });

  var note = document.getElementById("analytics-note");
  if (note) note.hidden = true;
  var root = document.getElementById("analytics-charts");
  root.dataset.rendered = String(Object.keys(charts).length);
  window.poolAnalytics = { data: data, charts: charts }; // for the browser test
})();
