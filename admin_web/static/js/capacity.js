// callqa admin web: the capacity page. Polls the box's figures (GetCapacity, every few
// seconds) and, while a benchmark runs, its progress. Everything else is server-rendered.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("capacity-config").textContent);
  var T = config.texts;
  var NOW_EVERY_MS = 3000;
  var BENCH_EVERY_MS = 2000;
  var lastCpu = null;  // {at: ms, stages: {name: seconds}}
  var locale = config.language === "zh" ? "zh-CN" : "en-GB";
  window.callqaCapacity = { polls: 0, up: null, bench: null };

  function byId(id) { return document.getElementById(id); }
  function num(v, digits) {
    return Number(v).toLocaleString(locale, { minimumFractionDigits: digits || 0,
      maximumFractionDigits: digits || 0 });
  }
  function set(id, text) { var e = byId(id); if (e) { e.textContent = text; } }

  function showNow(data) {
    window.callqaCapacity.polls += 1;
    window.callqaCapacity.up = data.up;
    byId("now-down").hidden = data.up;
    byId("box-now").dataset.up = data.up ? "1" : "0";
    set("now-updated", T.updated.replace("{time}", new Date().toLocaleTimeString(locale,
      { hour12: false, timeZone: "Asia/Shanghai" })));  // the center's time, as the site
    if (!data.up) {
      set("now-problem", data.problem || "");
      return;
    }
    set("now-lines", data.live_lines + " / " + data.max_sessions);
    set("now-backlog", data.asr_backlog_utterances + " · " + num(data.asr_backlog_audio_s, 1) + " s");
    set("now-p50", num(data.latency_p50_ms) + " ms");
    set("now-p95", num(data.latency_p95_ms) + " ms");
    set("now-rss", num(data.rss_mb) + " MB");
    set("now-rtf", data.rtf === null ? "—" : num(data.rtf, 3));
    set("now-disk", data.queued_on_disk);
    set("now-transcripts", num(data.transcripts));
    set("now-early", data.transcripts ? num(100 * data.early_used / data.transcripts) + " %" : "—");
    set("fact-device", data.asr_device || "—");
    set("fact-model", data.model_name || "—");
    set("fact-compute", data.compute_type || "—");
    var at = Date.now();
    var shares = {};
    var top = 0;
    Object.keys(data.stage_cpu_s).forEach(function (stage) {
      var total = data.stage_cpu_s[stage];
      var share = null;
      if (lastCpu && lastCpu.stages[stage] !== undefined && at > lastCpu.at) {
        share = Math.max(0, (total - lastCpu.stages[stage]) / ((at - lastCpu.at) / 1000));
      }
      shares[stage] = { total: total, share: share };
      top = Math.max(top, share === null ? 0 : share);
    });
    Array.prototype.forEach.call(document.querySelectorAll(".stage-bar"), function (row) {
      var s = shares[row.dataset.stage];
      if (!s) { return; }
      var label = row.querySelector(".num");
      var bar = row.querySelector(".bar span");
      if (s.share === null) {
        label.textContent = num(s.total, 1) + " s";
        bar.style.width = "0%";
      } else {
        label.textContent = num(100 * s.share, 0) + "%";
        bar.style.width = Math.min(100, 100 * s.share) + "%";
      }
    });
    lastCpu = { at: at, stages: data.stage_cpu_s };
  }

  function pollNow() {
    fetch(config.now_url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { up: false, problem: "HTTP " + r.status }; })
      .then(showNow)
      .catch(function () { showNow({ up: false, problem: "" }); })
      .then(function () { setTimeout(pollNow, NOW_EVERY_MS); });
  }

  function stepRow(config, s) {
    var tr = document.createElement("tr");
    var cells = [config, s.lines, s.p50_ms === null ? "—" : num(s.p50_ms),
      s.p95_ms === null ? "—" : num(s.p95_ms), s.cores === null ? "—" : num(s.cores, 2)];
    cells.forEach(function (text, i) {
      var td = document.createElement("td");
      if (i > 0) { td.className = "num"; }
      td.textContent = text;
      tr.appendChild(td);
    });
    var held = document.createElement("td");
    var tag = document.createElement("span");
    tag.className = "tag " + (s.held ? "good" : "bad");
    tag.textContent = s.held ? T.yes : T.no;
    held.appendChild(tag);
    tr.appendChild(held);
    return tr;
  }

  var wasRunning = byId("bench").dataset.phase === "running" ||
    byId("bench").dataset.phase === "starting";

  function showBench(b) {
    window.callqaCapacity.bench = b;
    var panel = byId("bench");
    panel.dataset.phase = b.phase;
    byId("bench-progress").hidden = b.phase === "none";
    byId("bench-form").hidden = !!b.running;
    byId("bench-cancel-form").hidden = !b.running;
    var phase = byId("bench-phase");
    phase.dataset.phase = b.phase;
    phase.textContent = T.phases[b.phase] || b.phase;
    set("bench-steps", T.steps.replace("{done}", b.steps_done || 0)
      .replace("{planned}", b.steps_planned || 0));
    var tbody = byId("bench-step-table").querySelector("tbody");
    tbody.textContent = "";
    Object.keys(b.steps || {}).forEach(function (name) {
      b.steps[name].forEach(function (s) { tbody.appendChild(stepRow(name, s)); });
    });
    var log = byId("bench-log");
    log.textContent = (b.log || []).join("\n");
    log.scrollTop = log.scrollHeight;
    if (wasRunning && !b.running) {
      phase.textContent += " — " + T.reload;
    }
    wasRunning = wasRunning || !!b.running;
  }

  function pollBench() {
    fetch(config.bench_url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (b) {
        if (b) { showBench(b); }
        setTimeout(pollBench, b && b.running ? BENCH_EVERY_MS : 4 * BENCH_EVERY_MS);
      })
      .catch(function () { setTimeout(pollBench, 4 * BENCH_EVERY_MS); });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.sent === "1") { event.preventDefault(); return; }
    form.dataset.sent = "1";
  });

  pollNow();
  pollBench();
})();
