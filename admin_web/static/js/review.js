// callqa admin web: small enhancements of the review forms. Everything works without it.
//  * a submitted form cannot be sent twice;
//  * after a panel form posts and the call page comes back, the page returns to where the
//    reviewer was (the forms post back to the call page, which reloads at the top);
//  * in the decision form, setting a change chooses "Change the result".
(function () {
  "use strict";
  var SCROLL_KEY = "callqa.review.scroll";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.sent === "1") {
      event.preventDefault();
      return;
    }
    form.dataset.sent = "1";
    if (form.closest("#review-panel")) {
      try {
        sessionStorage.setItem(SCROLL_KEY, JSON.stringify({
          path: location.pathname, y: window.scrollY
        }));
      } catch (e) { /* storage may be off */ }
    }
  });

  // A page restored from the back/forward cache keeps its "sent" marks: clear them.
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[data-sent]").forEach(function (form) {
      delete form.dataset.sent;
    });
  });

  function restoreScroll() {
    var saved = null;
    try {
      saved = JSON.parse(sessionStorage.getItem(SCROLL_KEY) || "null");
      sessionStorage.removeItem(SCROLL_KEY);
    } catch (e) { saved = null; }
    if (saved && saved.path === location.pathname && typeof saved.y === "number") {
      window.scrollTo(0, saved.y);
    }
  }

  function decisionForm() {
    var form = document.getElementById("decide-form");
    if (!form) { return; }
    var changes = form.querySelector(".decide-changes");
    if (!changes) { return; }
    function changed() {
      var any = false;
      changes.querySelectorAll("select, input").forEach(function (el) {
        if ((el.type === "checkbox" && el.checked) || (el.type !== "checkbox" && el.value)) {
          any = true;
        }
      });
      changes.classList.toggle("has-changes", any);
      var choice = form.querySelector("input[name=decision][value=changed]");
      if (any && choice) { choice.checked = true; }
    }
    changes.addEventListener("input", changed);
    changes.addEventListener("change", changed);
  }

  function start() {
    restoreScroll();
    decisionForm();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
