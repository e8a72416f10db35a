/* The call page: the two-lane player (wavesurfer.js), the timeline of marks, the transcript
 * that follows the playhead, and seeking from marks, lines and findings.
 *
 * Data comes from the JSON block #call-data (no inline script: the CSP is script-src 'self').
 * The waveform is drawn from server-side peaks (peaks.json), so the browser never decodes the
 * audio; the <audio> element streams recording.wav with range requests, and only once the
 * user presses play (preload="none"), so that merely opening the page is not a playback.
 *
 * ?t=SECONDS in the page's address (search hits link so) starts the player at that time.
 * For browser tests: window.callqaPlayer.currentTime() and .seek(seconds).
 */
(function () {
  'use strict';

  var dataBlock = document.getElementById('call-data');
  if (!dataBlock) { return; }
  var data = JSON.parse(dataBlock.textContent || '{}');
  var messages = data.messages || {};
  var duration = Number(data.duration) || 0;

  var ws = null;            // the WaveSurfer instance, once the peaks are in
  var regions = null;       // its Regions plugin (the span of the finding last picked)
  var media = document.getElementById('player-audio');
  var position = 0;         // where the page thinks the playhead is, with or without a player
  var playing = false;
  var ready = false;        // the player can play (wavesurfer's 'ready')

  var playButton = document.getElementById('play-button');
  var clock = document.getElementById('current-time');
  var status = document.getElementById('player-status');
  var rateSelect = document.getElementById('playback-rate');
  var playhead = document.getElementById('timeline-playhead');
  var transcript = document.getElementById('transcript');
  var lines = Array.prototype.slice.call(document.querySelectorAll('.transcript-line[data-start]'));
  var lineStarts = lines.map(function (el) { return parseFloat(el.dataset.start); });
  var lineEnds = lines.map(function (el) { return parseFloat(el.dataset.end); });
  var currentLine = null;
  // ?t=SECONDS (a search hit's link): the player starts there, the line is shown.
  var startAt = parseFloat(new URLSearchParams(window.location.search).get('t'));

  function formatClock(seconds) {
    var total = Math.max(0, Math.floor(seconds || 0));
    var m = Math.floor(total / 60);
    var s = total % 60;
    return m + ':' + (s < 10 ? '0' : '') + s;
  }

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function withAlpha(color, alphaHex) {
    return /^#[0-9a-fA-F]{6}$/.test(color) ? color + alphaHex : color;
  }

  function setStatus(text, isError) {
    if (!status) { return; }
    status.textContent = text || '';
    status.classList.toggle('error', !!isError);
  }

  /* The line under the playhead: the latest-starting line that holds t. */
  function lineAt(t) {
    var found = -1;
    for (var i = 0; i < lines.length; i++) {
      if (lineStarts[i] > t) { break; }
      if (t < lineEnds[i]) { found = i; }
    }
    return found >= 0 ? lines[found] : null;
  }

  function keepInView(el) {
    if (!transcript || !el) { return; }
    var top = el.offsetTop;        // .transcript is position: relative
    var bottom = top + el.offsetHeight;
    if (top < transcript.scrollTop || bottom > transcript.scrollTop + transcript.clientHeight) {
      transcript.scrollTop = Math.max(0, top - transcript.clientHeight / 3);
    }
  }

  function showPosition(t) {
    position = t;
    if (clock) { clock.textContent = formatClock(t); }
    var line = lineAt(t);
    if (line !== currentLine) {
      if (currentLine) { currentLine.classList.remove('current'); }
      if (line) { line.classList.add('current'); }
      currentLine = line;
      if (line && playing) { keepInView(line); }
    }
    if (playhead && duration > 0) {
      playhead.style.left = Math.min(100, Math.max(0, 100 * t / duration)) + '%';
      playhead.classList.add('shown');
    }
  }

  function seek(seconds) {
    var t = Math.max(0, Math.min(Number(seconds) || 0, duration || Number(seconds) || 0));
    if (ws) {
      ws.setTime(t);
    }
    showPosition(t);
  }

  function currentTime() {
    if (ws && media && media.readyState > 0) { return ws.getCurrentTime(); }
    return position;
  }

  function markSpan(start, end) {
    if (!regions) { return; }
    regions.clearRegions();
    if (end > start) {
      regions.addRegion({ start: start, end: end, color: 'rgba(255, 196, 0, 0.22)',
                          drag: false, resize: false });
    }
  }

  function flashFinding(seq) {
    var el = document.querySelector('.finding[data-seq="' + seq + '"]');
    if (!el) { return; }
    el.classList.add('flash');
    window.setTimeout(function () { el.classList.remove('flash'); }, 1500);
  }

  function setPlaying(value) {
    playing = value;
    if (!playButton) { return; }
    playButton.setAttribute('aria-pressed', value ? 'true' : 'false');
    playButton.querySelector('.icon').textContent = value ? '❚❚' : '▶';
    playButton.querySelector('.label').textContent = value ? (messages.pause || 'Pause')
                                                           : (messages.play || 'Play');
  }

  function togglePlay() {
    if (!ws) { return; }
    if (ws.isPlaying()) {
      ws.pause();
      return;
    }
    if (media && media.readyState === 0 && position > 0) {
      // preload="none": the file starts loading now; start where the user last sought.
      var target = position;
      media.addEventListener('loadedmetadata', function () {
        if (Math.abs(media.currentTime - target) > 0.25) { media.currentTime = target; }
      }, { once: true });
    }
    var started = ws.play();
    if (started && started.catch) {
      started.catch(function () { setStatus(messages.failed, true); setPlaying(false); });
    }
  }

  /* [seconds between notches, seconds between labels] for a call this long. */
  function tickSpacing(seconds) {
    if (seconds <= 90) { return [1, 10]; }
    if (seconds <= 300) { return [5, 30]; }
    if (seconds <= 900) { return [10, 60]; }
    if (seconds <= 2700) { return [30, 300]; }
    return [60, 600];
  }

  /* The lane labels beside the waveform, when the file's channels differ from the call's meta. */
  function relabelLanes(lanes) {
    var box = document.querySelector('.lane-labels');
    var names = data.laneNames || {};
    if (!box || box.children.length === lanes.length) { return; }
    box.textContent = '';
    lanes.forEach(function (lane) {
      var label = document.createElement('span');
      label.className = 'lane-label ' + lane;
      label.textContent = names[lane] || lane;
      box.appendChild(label);
    });
    var wave = document.getElementById('waveform');
    wave.className = 'lanes-' + lanes.length;
  }

  function createPlayer(peaks) {
    var agentColor = cssVar('--agent', '#2b6cb0');
    var customerColor = cssVar('--customer', '#2f855a');
    var colors = { agent: agentColor, customer: customerColor };
    var lanes = peaks.lanes || data.lanes || ['agent', 'customer'];
    relabelLanes(lanes);
    var split = lanes.map(function (lane) {
      var c = colors[lane] || agentColor;
      return { waveColor: withAlpha(c, '80'), progressColor: c };
    });
    var plugins = [];
    if (window.WaveSurfer.Regions) {
      regions = window.WaveSurfer.Regions.create();
      plugins.push(regions);
    }
    var fullDuration = Number(peaks.duration) || duration;
    if (fullDuration > 0) { duration = fullDuration; }
    if (window.WaveSurfer.Timeline) {
      var ticks = tickSpacing(duration);
      plugins.push(window.WaveSurfer.Timeline.create({
        height: 16,
        timeInterval: ticks[0],
        primaryLabelInterval: ticks[1] / ticks[0],
        secondaryLabelInterval: ticks[1] / ticks[0],
        formatTimeCallback: formatClock,
        style: { fontSize: '11px', color: cssVar('--muted', '#616e7c') }
      }));
    }
    ws = window.WaveSurfer.create({
      container: '#waveform',
      media: media,
      url: data.audioUrl,
      peaks: peaks.peaks,
      duration: duration,
      height: 64,
      splitChannels: split,
      normalize: true,
      barWidth: 2,
      barGap: 1,
      barRadius: 1,
      cursorColor: cssVar('--brand', '#1d5fbf'),
      cursorWidth: 2,
      dragToSeek: true,
      plugins: plugins
    });
    ws.on('ready', function () {
      ready = true;
      setStatus('');
      if (playButton) { playButton.disabled = false; }
      if (position > 0) { ws.setTime(position); }
      if (startAt >= 0) { seek(startAt); startAt = NaN; }
    });
    ws.on('timeupdate', function (t) { showPosition(t); });
    ws.on('play', function () { setPlaying(true); });
    ws.on('pause', function () { setPlaying(false); });
    ws.on('finish', function () { setPlaying(false); });
    ws.on('error', function () { setStatus(messages.failed, true); setPlaying(false); });
  }

  function loadPlayer() {
    if (!data.canPlay || !data.peaksUrl || !window.WaveSurfer || !document.getElementById('waveform')) {
      return;
    }
    setStatus(messages.loading);
    fetch(data.peaksUrl, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) {
            throw new Error((body && body.error && body.error.message) || messages.failed);
          }
          return body;
        });
      })
      .then(createPlayer)
      .catch(function (err) { setStatus(err && err.message ? err.message : messages.failed, true); });
  }

  /* Clicks: timeline marks, transcript lines and findings' times all seek. */
  document.addEventListener('click', function (event) {
    var target = event.target.closest('.timeline-mark, .transcript-line, .seek');
    if (!target || target.dataset.start === undefined) { return; }
    event.preventDefault();
    var start = parseFloat(target.dataset.start);
    var end = parseFloat(target.dataset.end || '');
    var finding = target.closest('.finding');
    var seq = target.dataset.seq || (finding && finding.dataset.seq);
    if (target.classList.contains('timeline-mark') || finding) {
      if (finding && !target.dataset.end) {
        var mark = document.querySelector('.timeline-mark[data-seq="' + seq + '"]');
        end = mark ? parseFloat(mark.dataset.end) : start;
      }
      markSpan(start, isNaN(end) ? start : end);
    }
    if (seq !== undefined && seq !== null && target.classList.contains('timeline-mark')) {
      flashFinding(seq);
    }
    seek(start);
  });

  document.addEventListener('keydown', function (event) {
    if (event.key !== 'Enter' && event.key !== ' ') { return; }
    var line = event.target.closest && event.target.closest('.transcript-line');
    if (!line) { return; }
    event.preventDefault();
    seek(parseFloat(line.dataset.start));
  });

  if (playButton) { playButton.addEventListener('click', togglePlay); }
  if (rateSelect) {
    rateSelect.addEventListener('change', function () {
      var rate = parseFloat(rateSelect.value) || 1;
      if (ws) { ws.setPlaybackRate(rate, true); } else if (media) { media.playbackRate = rate; }
    });
  }

  window.callqaPlayer = {
    currentTime: currentTime,
    seek: seek,
    play: function () { if (ws && !ws.isPlaying()) { togglePlay(); } },
    pause: function () { if (ws) { ws.pause(); } },
    isPlaying: function () { return !!(ws && ws.isPlaying()); },
    isReady: function () { return ready; }
  };
  Object.defineProperty(window.callqaPlayer, 'ready', { get: function () { return ready; } });

  if (startAt >= 0) {
    seek(startAt);
    keepInView(currentLine);
  }
  loadPlayer();
}());
