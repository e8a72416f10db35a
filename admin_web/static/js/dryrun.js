// callqa admin web: the dry run's progress bar. Polls the run's progress (JSON) every second
// while it goes on, moves the bar, and reloads the page once the run is over so that the
// results show. Without it the page still works: reload it by hand.
(function () {
  "use strict";
  var box = document.getElementById("dryrun-progress");
  if (!box) { return; }
  var url = box.getAttribute("data-progress-url");
  var bar = box.querySelector(".bar");
  var meter = box.querySelector(".progress");
  var done = document.getElementById("dryrun-done");
  var total = document.getElementById("dryrun-total");
  var percent = document.getElementById("dryrun-percent");
  var stopping = document.getElementById("dryrun-cancelling");
  var problem = document.getElementById("dryrun-poll-error");
  var cancelButton = document.getElementById("dryrun-cancel");
  var fmt = new Intl.NumberFormat(document.documentElement.lang || undefined,
                                  { maximumFractionDigits: 0 });
  var INTERVAL_MS = 1000;

  function show(state) {
    bar.style.width = Math.max(0, Math.min(100, state.percent)) + "%";
    meter.setAttribute("aria-valuenow", String(state.done));
    meter.setAttribute("aria-valuemax", String(state.total));
    done.textContent = fmt.format(state.done);
    total.textContent = fmt.format(state.total);
    percent.textContent = fmt.format(state.percent) + "%";
    if (state.cancel_requested) {
      stopping.hidden = false;
      if (cancelButton) { cancelButton.disabled = true; }
    }
  }

  function poll() {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) {
            throw new Error((body && body.error && body.error.message) || response.statusText);
          }
          return body;
        });
      })
      .then(function (state) {
        problem.hidden = true;
        show(state);
        if (state.finished) {
          window.location.reload();
        } else {
          window.setTimeout(poll, INTERVAL_MS);
        }
      })
      .catch(function (error) {
        problem.textContent = error.message;
        problem.hidden = false;
        window.setTimeout(poll, INTERVAL_MS * 3);
      });
  }

  window.setTimeout(poll, INTERVAL_MS);
})();
