// The rubric editor: form / YAML tabs, the inputs of each item's kind, and a note when
// the other view has changes it does not show yet. Everything else is plain forms.
(function () {
  "use strict";

  function showTab(name) {
    document.querySelectorAll(".tabs .tab").forEach(function (tab) {
      tab.classList.toggle("active", tab.dataset.tab === name);
      tab.setAttribute("aria-selected", tab.dataset.tab === name ? "true" : "false");
    });
    document.querySelectorAll(".panel[data-panel]").forEach(function (panel) {
      panel.hidden = panel.dataset.panel !== name;
    });
  }

  // Which view was edited since the page loaded: the other one shows a note.
  var changed = { form: false, yaml: false };

  function markStale() {
    document.querySelectorAll(".stale[data-stale]").forEach(function (note) {
      var other = note.dataset.stale === "form" ? "yaml" : "form";
      note.hidden = !changed[other];
    });
  }

  document.querySelectorAll(".tabs .tab").forEach(function (tab) {
    tab.addEventListener("click", function () {
      showTab(tab.dataset.tab);
      markStale();
    });
  });

  document.querySelectorAll("form[data-watch]").forEach(function (form) {
    var which = form.dataset.watch;
    form.addEventListener("input", function () { changed[which] = true; });
    form.addEventListener("change", function () { changed[which] = true; });
  });

  // Show the inputs of the item's kind, hide the others (they are not saved).
  function applyKind(card) {
    var select = card.querySelector("select[name$='-kind']");
    if (!select) { return; }
    var kind = select.value;
    card.querySelectorAll(".param[data-kinds]").forEach(function (field) {
      field.hidden = field.dataset.kinds.split(" ").indexOf(kind) < 0;
    });
    var hint = card.querySelector(".kind-hint");
    var hints = readHints();
    if (hint) { hint.textContent = hints[kind] || ""; }
  }

  var hintCache = null;
  function readHints() {
    if (hintCache === null) {
      var node = document.getElementById("kind-hints");
      hintCache = node ? JSON.parse(node.textContent) : {};
    }
    return hintCache;
  }

  // The seconds of a window only matter when a window is chosen.
  function applyWindow(card) {
    card.querySelectorAll(".window").forEach(function (box) {
      var mode = box.querySelector("select");
      var seconds = box.querySelector("input");
      if (mode && seconds) { seconds.disabled = mode.value === ""; }
    });
  }

  document.querySelectorAll("fieldset.item").forEach(function (card) {
    var select = card.querySelector("select[name$='-kind']");
    if (select) {
      select.addEventListener("change", function () { applyKind(card); });
    }
    card.querySelectorAll(".window select").forEach(function (mode) {
      mode.addEventListener("change", function () { applyWindow(card); });
    });
    var title = card.querySelector(".item-title");
    var name = card.querySelector("input[name$='-name']");
    var id = card.querySelector("input[name$='-id']");
    function retitle() {
      if (title) { title.textContent = (name && name.value) || (id && id.value) || ""; }
    }
    if (name) { name.addEventListener("input", retitle); }
    if (id) { id.addEventListener("input", retitle); }
    applyWindow(card);
  });

  // A disabled input is not sent: enable the window seconds again before submitting, so an
  // unchanged value survives switching the window off and on.
  var form = document.getElementById("rubric-form");
  if (form) {
    form.addEventListener("submit", function () {
      form.querySelectorAll(".window input").forEach(function (input) { input.disabled = false; });
    });
  }

  // Bring the first problem into view.
  var firstError = document.querySelector(".panel:not([hidden]) .has-error");
  if (firstError && firstError.scrollIntoView) {
    firstError.scrollIntoView({ block: "center" });
  }
})();
