// callqa admin web: the live lines page, kept up to date by server-sent events.
// The server (admin_web/live_stream.py) sends: lines (a snapshot of the live calls, on
// connect and every few seconds), recent, started, finding, alert, scored, ended,
// transcript (the open line only), down (the daemon is not answering; the stream ends and
// the page reconnects after a delay), busy (no free stream slot: retry later) and bye (the
// stream's time is up: reconnect now). The page reconnects by itself, not EventSource.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("live-config").textContent);
  var T = config.texts;
  var tbody = document.getElementById("live-lines");
  var empty = document.getElementById("live-empty");
  var template = document.getElementById("line-template");
  var alertList = document.getElementById("alert-list");
  var alertEmpty = document.getElementById("alert-empty");
  var panel = document.getElementById("live-transcript");
  var tlines = document.getElementById("transcript-lines");
  var banners = {
    down: document.getElementById("live-down"),
    busy: document.getElementById("live-busy"),
    lost: document.getElementById("live-lost")
  };
  var pageBanner = document.getElementById("daemon-down");
  var source = null;
  var watched = null;
  var watchedEnded = false;
  var lostTimer = null;
  var retryTimer = null;
  var seenAlerts = {};
  var recentAlerts = {};  // call id -> [alert, ...] newest first
  var MAX_ALERTS = 60;

  window.callqaLive = { state: "connecting", events: 0, watched: null };

  function show(name) {
    Object.keys(banners).forEach(function (key) { banners[key].hidden = key !== name; });
    if (pageBanner && name !== "down") { pageBanner.hidden = true; }
  }

  function clock(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var m = Math.floor(s / 60);
    var r = s % 60;
    return m + ":" + (r < 10 ? "0" : "") + r;
  }

  function timeOf(iso) {
    if (!iso) { return ""; }
    try {
      return new Date(iso).toLocaleTimeString(config.language === "zh" ? "zh-CN" : "en-GB",
        { timeZone: "Asia/Shanghai", hour12: false });
    } catch (e) { return iso; }
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function rowOf(callId) {
    return tbody.querySelector('tr[data-call-id="' + CSS.escape(callId) + '"]');
  }

  function cell(row, name) { return row.querySelector('[data-f="' + name + '"]'); }

  function newRow(callId) {
    var row = template.content.firstElementChild.cloneNode(true);
    row.dataset.callId = callId;
    row.querySelector("button.watch").dataset.callId = callId;
    tbody.appendChild(row);
    return row;
  }

  function fillLatest(row, callId) {
    var box = cell(row, "latest");
    box.textContent = "";
    (recentAlerts[callId] || []).slice(0, 2).forEach(function (a) {
      var tag = el("span", "tag sev-" + a.severity, a.item_name || a.item_id);
      tag.title = a.evidence || "";
      box.appendChild(tag);
      box.appendChild(document.createTextNode(" "));
    });
  }

  function fillAlerts(row, n) {
    var box = cell(row, "alerts");
    box.textContent = "";
    if (n > 0) { box.appendChild(el("span", "tag bad", n)); } else { box.textContent = "0"; }
  }

  function fillRow(row, c) {
    cell(row, "agent").textContent = c.agent_id || "—";
    cell(row, "team").textContent = c.team_id || "—";
    var dur = cell(row, "duration");
    dur.dataset.duration = c.duration_s;
    dur.dataset.at = Date.now();
    dur.textContent = clock(c.duration_s);
    cell(row, "utterances").textContent = c.utterances;
    cell(row, "findings").textContent = c.findings;
    fillAlerts(row, Math.max(c.alerts, (recentAlerts[c.call_id] || []).length));
    fillLatest(row, c.call_id);
    row.classList.toggle("watched", c.call_id === watched);
    if (c.call_id === watched) {
      document.getElementById("transcript-title").textContent =
        (c.agent_id || "—") + " · " + (c.team_id || "—");
    }
  }

  function updateCount() {
    var n = tbody.querySelectorAll("tr[data-call-id]").length;
    var count = document.getElementById("line-count");
    count.dataset.n = n;
    count.textContent = T.count.replace("{n}", n);
    empty.hidden = n > 0;
  }

  function onLines(data) {
    var keep = {};
    data.calls.forEach(function (c) {
      keep[c.call_id] = true;
      fillRow(rowOf(c.call_id) || newRow(c.call_id), c);
    });
    Array.prototype.slice.call(tbody.querySelectorAll("tr[data-call-id]")).forEach(function (row) {
      if (!keep[row.dataset.callId]) { row.remove(); }
    });
    updateCount();
  }

  function onStarted(data) {
    if (data.watched) { return; }  // the open line's history, not a new line
    if (!rowOf(data.call_id)) {
      fillRow(newRow(data.call_id), { call_id: data.call_id, agent_id: "", team_id: "",
        duration_s: 0, utterances: 0, findings: 0, alerts: 0 });
      updateCount();
    }
  }

  function addAlert(a, atTop) {
    if (seenAlerts[a.alert_id]) { return false; }
    seenAlerts[a.alert_id] = true;
    // The server rendered the alerts it knew with the page; the stream sends them again.
    var rendered = alertList.querySelector('li[data-alert-id="' + CSS.escape(a.alert_id) + '"]');
    if (rendered) { rendered.remove(); }
    var list = recentAlerts[a.call_id] = recentAlerts[a.call_id] || [];
    if (atTop) { list.unshift(a); } else { list.push(a); }
    var li = el("li", "alert-item fresh");
    li.dataset.alertId = a.alert_id;
    li.dataset.callId = a.call_id;
    var head = el("div", "alert-head");
    head.appendChild(el("span", "tag sev-" + a.severity, a.severity));
    head.appendChild(document.createTextNode(" "));
    head.appendChild(el("strong", "", a.item_name || a.item_id));
    head.appendChild(document.createTextNode(" "));
    head.appendChild(el("time", "muted", timeOf(a.raised_at)));
    if (a.late) {
      head.appendChild(document.createTextNode(" "));
      head.appendChild(el("span", "tag warn", T.late));
    }
    li.appendChild(head);
    li.appendChild(el("div", "alert-who",
      (T[a.speaker] || a.speaker) + " · " + (a.agent_id || "—") + " · " + (a.team_id || "—")));
    li.appendChild(el("div", "alert-evidence", a.evidence));
    if (atTop) { alertList.insertBefore(li, alertList.firstChild); } else { alertList.appendChild(li); }
    while (alertList.children.length > MAX_ALERTS) { alertList.removeChild(alertList.lastChild); }
    alertEmpty.hidden = true;
    return true;
  }

  function onAlert(a) {
    var added = addAlert(a, true);
    var row = rowOf(a.call_id);
    if (row && added) {
      fillLatest(row, a.call_id);
      var n = parseInt(cell(row, "alerts").textContent, 10) || 0;
      fillAlerts(row, Math.max(n + 1, (recentAlerts[a.call_id] || []).length));
      row.classList.add("alerting");
    }
    if (a.watched || a.call_id === watched) { transcriptAlert(a); }
  }

  function onRecent(data) {
    // Newest first, from the site's own alert log; older than anything shown live.
    data.alerts.slice().reverse().forEach(function (a) { addAlert(a, true); });
    data.alerts.forEach(function (a) {
      var row = rowOf(a.call_id);
      if (row) { fillLatest(row, a.call_id); }
    });
  }

  function onFinding(f) {
    var row = rowOf(f.call_id);
    if (row && !f.watched) {
      var c = cell(row, "findings");
      c.textContent = (parseInt(c.textContent, 10) || 0) + 1;
    }
  }

  function onEnded(data) {
    if (data.watched || data.call_id === watched) {
      watchedEnded = true;
      document.getElementById("transcript-state").textContent = T.ended;
      var link = document.getElementById("transcript-call-link");
      link.href = config.call_url.replace("CALLID", encodeURIComponent(data.call_id));
      link.hidden = false;
    }
    var row = rowOf(data.call_id);
    if (row && !data.watched) { row.remove(); updateCount(); }
  }

  function onScored(data) {
    if (data.watched || data.call_id === watched) {
      document.getElementById("transcript-state").textContent =
        T.scored.replace("{score}", data.score);
    }
  }

  // ------------------------------------------------------------- the open transcript

  // A partial transcript and its final one share their key: the speaker and the number of
  // the utterance (numbered per leg by the box).
  function transcriptLine(key) {
    return tlines.querySelector('[data-key="' + CSS.escape(key) + '"]');
  }

  function onTranscript(t) {
    if (!t.watched || t.call_id !== watched) { return; }
    var key = t.speaker + ":" + t.seq;
    var line = transcriptLine(key);
    if (!line) {
      line = el("div", "tline");
      line.dataset.key = key;
      line.appendChild(el("span", "at muted"));
      line.appendChild(el("span", "who"));
      line.appendChild(el("span", "text"));
      var wait = tlines.querySelector(".waiting");
      if (wait) { wait.remove(); }
    }
    line.dataset.start = t.start_s;
    place(line, t.start_s);
    line.className = "tline speaker-" + t.speaker + (t.partial ? " partial" : "");
    line.querySelector(".at").textContent = clock(t.start_s);
    line.querySelector(".who").textContent = T[t.speaker] || t.speaker;
    line.querySelector(".text").textContent = t.text;
    tlines.scrollTop = tlines.scrollHeight;
  }

  function transcriptAlert(a) {
    if (tlines.querySelector('[data-alert-id="' + CSS.escape(a.alert_id) + '"]')) { return; }
    var mark = el("div", "tline alert-mark sev-" + a.severity);
    mark.dataset.alertId = a.alert_id;
    mark.dataset.start = a.end_s;
    mark.appendChild(el("span", "at muted", clock(a.start_s)));
    mark.appendChild(el("span", "who", "⚠ " + (a.item_name || a.item_id)));
    mark.appendChild(el("span", "text", a.evidence));
    place(mark, a.end_s);
  }

  // Lines stay in the order of their start in the call (an alert after its words).
  function place(node, start) {
    var after = null;
    Array.prototype.forEach.call(tlines.querySelectorAll(".tline"), function (other) {
      if (after === null && other !== node && parseFloat(other.dataset.start) > start) {
        after = other;
      }
    });
    if (node.nextSibling !== after || node.parentNode !== tlines) {
      tlines.insertBefore(node, after);
    }
  }

  function watch(callId) {
    watched = callId;
    watchedEnded = false;
    window.callqaLive.watched = callId;
    var row = rowOf(callId);
    document.getElementById("transcript-title").textContent = row
      ? cell(row, "agent").textContent + " · " + cell(row, "team").textContent : callId;
    document.getElementById("transcript-state").textContent = T.watching;
    document.getElementById("transcript-call-link").hidden = true;
    panel.hidden = !callId;
    Array.prototype.forEach.call(tbody.querySelectorAll("tr[data-call-id]"), function (r) {
      r.classList.toggle("watched", r.dataset.callId === callId);
    });
    connect();
    if (callId) { panel.scrollIntoView({ block: "nearest" }); }
  }

  // ------------------------------------------------------------- the event stream

  function handler(fn) {
    return function (event) {
      window.callqaLive.events += 1;
      clearTimeout(lostTimer);
      if (banners.lost && !banners.lost.hidden) { banners.lost.hidden = true; }
      fn(event.data ? JSON.parse(event.data) : {});
    };
  }

  function connect() {
    clearTimeout(retryTimer);
    if (source) { source.close(); }
    var url = config.events_url;
    if (watched && !watchedEnded) {
      // WatchCall sends the line's history first, then its live events: start afresh.
      url += (url.indexOf("?") >= 0 ? "&" : "?") + "call=" + encodeURIComponent(watched);
      tlines.textContent = "";
      tlines.appendChild(el("p", "waiting muted", T.waiting));
    }
    source = new EventSource(url);
    window.callqaLive.state = "connecting";
    source.addEventListener("lines", handler(function (data) {
      window.callqaLive.state = "up";
      show(null);
      onLines(data);
    }));
    source.addEventListener("recent", handler(onRecent));
    source.addEventListener("started", handler(onStarted));
    source.addEventListener("alert", handler(onAlert));
    source.addEventListener("finding", handler(onFinding));
    source.addEventListener("transcript", handler(onTranscript));
    source.addEventListener("scored", handler(onScored));
    source.addEventListener("ended", handler(onEnded));
    source.addEventListener("call-error", handler(function () {
      document.getElementById("transcript-state").textContent = T.missing;
    }));
    source.addEventListener("down", handler(function (data) {
      window.callqaLive.state = "down";
      show("down");
      document.getElementById("live-down-detail").textContent = data.message || "";
      later(config.retry_ms);
    }));
    source.addEventListener("busy", handler(function () {
      window.callqaLive.state = "busy";
      show("busy");
      later(config.busy_retry_ms);
    }));
    source.addEventListener("bye", handler(function () { later(0); }));
    source.onerror = function () {
      // The site did not answer, or the stream broke: try again, and say so when nothing
      // comes back for a while.
      later(config.retry_ms);
      clearTimeout(lostTimer);
      lostTimer = setTimeout(function () {
        if (window.callqaLive.state !== "down" && window.callqaLive.state !== "busy") {
          window.callqaLive.state = "lost";
          show("lost");
        }
      }, 8000);
    };
  }

  // Reconnects are ours, not EventSource's own: a reconnect must start the open line's
  // transcript afresh (its history comes again), and it must not replay an ended one.
  function later(ms) {
    if (source) { source.close(); source = null; }
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, ms);
  }

  tbody.addEventListener("click", function (event) {
    var button = event.target.closest("button.watch");
    if (button) { watch(button.dataset.callId); }
  });
  document.getElementById("transcript-close").addEventListener("click", function () {
    watch(null);
  });

  // Durations count up between two snapshots.
  setInterval(function () {
    Array.prototype.forEach.call(tbody.querySelectorAll('[data-f="duration"]'), function (c) {
      var base = parseFloat(c.dataset.duration) || 0;
      var at = parseFloat(c.dataset.at) || Date.now();
      if (!c.dataset.at) { c.dataset.at = at; }
      c.textContent = clock(base + (Date.now() - at) / 1000);
    });
  }, 1000);

  connect();
})();
