// The pool switches card (assignment, the kill switch; refills): its words and colour, from the
// `pool:update` event that dashboard.js fires for every new payload. textContent only.
(function () {
  "use strict";

  function render(switches) {
    var card = document.querySelector('[data-card="switches"]');
    if (!card || !switches) return;
    var assignment = switches.assignment || {};
    var refills = switches.refills || {};
    var a = card.querySelector('[data-switch="assignment"]');
    if (a) a.textContent = assignment.enabled ? "on" : "OFF";
    var r = card.querySelector('[data-switch="refills"]');
    if (r) r.textContent = refills.enabled ? "running" : "paused";
    var note = card.querySelector("[data-switch-note]");
    if (note) {
      if (assignment.off_by === "environment") note.textContent = "off by POOL_ASSIGNMENT=off";
      else if (assignment.last_change) note.textContent = "last change by " + (assignment.last_change.by || "?");
      else note.textContent = "never switched";
    }
    card.classList.toggle("metric--bad", !assignment.enabled);
    card.classList.toggle("metric--warn", Boolean(assignment.enabled) && !refills.enabled);
  }

  document.addEventListener("pool:update", function (event) {
    render(event.detail && event.detail.switches);
  });
})();
