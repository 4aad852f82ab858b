// The template rollout card: the parts a plain data-bind cannot update (the progress bar,
// the "rolling out" state and the card's colour), from the `pool:update` event that
// dashboard.js fires for every new payload. Values are written with textContent only.
(function () {
  "use strict";

  function render(rollout) {
    var card = document.querySelector('[data-card="rollout"]');
    if (!card || !rollout) return;
    var bar = card.querySelector("progress");
    if (bar) {
      bar.value = rollout.progress;
      bar.textContent = Math.round(rollout.progress * 100) + "%";
    }
    var state = card.querySelector("[data-rollout-state]");
    if (state) state.textContent = rollout.in_progress ? "rolling out" : "up to date";
    card.classList.toggle("metric--warn", Boolean(rollout.in_progress));
  }

  document.addEventListener("pool:update", function (event) {
    render(event.detail && event.detail.rollout);
  });
})();
