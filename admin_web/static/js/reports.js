/* The quality report's charts (ECharts) and its form.
 *
 * Data comes from the JSON block #report-data (no inline script: the CSP is script-src 'self').
 * Charts: the daily trend of the pass rate and the average score (this period shaded, the
 * period before it unshaded), the A/B/C problem counts of both periods, and a heatmap of how
 * often each item fired per team or per agent. Text uses the page's own font stack, so that
 * Chinese renders with the same font as the rest of the page; every chart follows the width
 * of its card. Tooltips escape what they show (item names come from rubrics).
 *
 * For browser tests: window.callqaReport.charts (the ECharts instances by id).
 */
(function () {
  'use strict';

  var block = document.getElementById('report-data');

  /* The form: show the fields the chosen level and period need. */
  function syncForm() {
    var level = document.getElementById('report-level');
    var period = document.getElementById('report-period');
    if (!level || !period) { return; }
    var show = function (selector, on) {
      Array.prototype.forEach.call(document.querySelectorAll(selector), function (el) {
        el.hidden = !on;
        Array.prototype.forEach.call(el.querySelectorAll('select, input'), function (input) {
          input.disabled = !on;
        });
      });
    };
    show('#report-filters .for-team', level.value === 'team');
    show('#report-filters .for-agent', level.value === 'agent');
    show('#report-filters .for-custom', period.value === 'custom');
    show('#report-filters .for-anchor', period.value !== 'custom');
  }
  ['report-level', 'report-period'].forEach(function (id) {
    var el = document.getElementById(id);
    if (el) { el.addEventListener('change', syncForm); }
  });
  syncForm();

  if (!block || !window.echarts) { return; }
  var data = JSON.parse(block.textContent || '{}');
  var labels = data.labels || {};
  var style = getComputedStyle(document.documentElement);
  var font = style.fontFamily || 'sans-serif';
  var ink = style.getPropertyValue('--ink').trim() || '#1f2933';
  var muted = style.getPropertyValue('--muted').trim() || '#616e7c';
  var brand = style.getPropertyValue('--brand').trim() || '#1d5fbf';
  var good = style.getPropertyValue('--good').trim() || '#1a7f37';
  var severityColors = { A: '#c62828', B: '#b35c00', C: '#7b8794' };
  var charts = {};

  function escapeHtml(text) {
    return String(text === null || text === undefined ? '' : text)
      .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
  }

  function fixed(value, digits) {
    return value === null || value === undefined ? '—' : Number(value).toFixed(digits);
  }

  function make(id, height) {
    var el = document.getElementById(id);
    if (!el) { return null; }
    if (height) { el.style.height = height + 'px'; }
    var chart = window.echarts.init(el, null, { renderer: 'canvas' });
    charts[id] = chart;
    return chart;
  }

  var base = {
    textStyle: { fontFamily: font, color: ink, fontSize: 12 },
    animation: false
  };

  function merge(options) {
    var out = {};
    Object.keys(base).forEach(function (k) { out[k] = base[k]; });
    Object.keys(options).forEach(function (k) { out[k] = options[k]; });
    return out;
  }

  /* Trend: pass rate (%) and average score per day. */
  function drawTrend() {
    var days = data.daily || [];
    var chart = make('chart-trend');
    if (!chart || !days.length) { return; }
    var x = days.map(function (d) { return d.day.slice(5); });
    var firstIndex = days.findIndex(function (d) { return d.day >= data.periodFirst; });
    var passRate = days.map(function (d) {
      return d.pass_rate === null ? null : Math.round(1000 * d.pass_rate) / 10;
    });
    var avgScore = days.map(function (d) {
      return d.avg_score === null ? null : Math.round(10 * d.avg_score) / 10;
    });
    chart.setOption(merge({
      grid: { left: 48, right: 52, top: 36, bottom: 28, containLabel: false },
      legend: { top: 0, textStyle: { fontFamily: font, color: ink } },
      tooltip: {
        trigger: 'axis',
        formatter: function (items) {
          var i = items.length ? items[0].dataIndex : 0;
          var d = days[i] || {};
          return escapeHtml(d.day) + '<br>' +
            escapeHtml(labels.calls) + ': ' + escapeHtml(d.calls) + '<br>' +
            escapeHtml(labels.passRate) + ': ' + escapeHtml(fixed(passRate[i], 1)) +
            (passRate[i] === null ? '' : '%') + '<br>' +
            escapeHtml(labels.avgScore) + ': ' + escapeHtml(fixed(avgScore[i], 1));
        }
      },
      xAxis: { type: 'category', data: x, axisLabel: { color: muted, fontFamily: font },
               boundaryGap: false },
      yAxis: [
        { type: 'value', min: 0, max: 100, name: labels.passRate + ' %',
          nameTextStyle: { color: muted, fontFamily: font, align: 'left' },
          axisLabel: { color: muted, formatter: '{value}%' } },
        { type: 'value', min: 0, max: 100, name: labels.avgScore,
          nameTextStyle: { color: muted, fontFamily: font, align: 'right' },
          axisLabel: { color: muted }, splitLine: { show: false } }
      ],
      series: [
        { name: labels.passRate, type: 'line', data: passRate, yAxisIndex: 0,
          connectNulls: false, symbolSize: 6, itemStyle: { color: good },
          lineStyle: { width: 2 },
          markArea: firstIndex >= 0 ? {
            silent: true, itemStyle: { color: 'rgba(29, 95, 191, 0.07)' },
            label: { show: true, position: 'insideBottom', color: muted, fontFamily: font,
                     formatter: labels.thisPeriod },
            data: [[{ xAxis: x[firstIndex] }, { xAxis: x[x.length - 1] }]]
          } : undefined },
        { name: labels.avgScore, type: 'line', data: avgScore, yAxisIndex: 1,
          connectNulls: false, symbolSize: 6, itemStyle: { color: brand },
          lineStyle: { width: 2, type: 'dashed' } }
      ]
    }));
  }

  /* A/B/C problems: this period against the one before. */
  function drawAbc() {
    var abc = data.abc;
    var chart = make('chart-abc');
    if (!chart || !abc) { return; }
    var keys = ['A', 'B', 'C'];
    var names = keys.map(function (k) { return (labels.severity || {})[k] || k; });
    chart.setOption(merge({
      grid: { left: 44, right: 16, top: 36, bottom: 28 },
      legend: { top: 0, textStyle: { fontFamily: font, color: ink } },
      tooltip: {
        trigger: 'axis', axisPointer: { type: 'shadow' },
        formatter: function (items) {
          return items.map(function (it) {
            return escapeHtml(it.seriesName) + ' · ' + escapeHtml(it.name) + ': ' +
              escapeHtml(it.value);
          }).join('<br>');
        }
      },
      xAxis: { type: 'category', data: names, axisLabel: { color: ink, fontFamily: font } },
      yAxis: { type: 'value', minInterval: 1, axisLabel: { color: muted } },
      series: [
        { name: labels.previousPeriod, type: 'bar', barGap: '10%', barMaxWidth: 64,
          data: keys.map(function (k) { return abc.before[k] || 0; }),
          itemStyle: { color: '#c7d0da' },
          label: { show: true, position: 'top', color: muted } },
        { name: labels.thisPeriod, type: 'bar', barMaxWidth: 64,
          data: keys.map(function (k) {
            return { value: abc.now[k] || 0, itemStyle: { color: severityColors[k] } };
          }),
          label: { show: true, position: 'top', color: ink } }
      ]
    }));
  }

  /* Heatmap: per team (or agent) and item, the share of calls on which the item fired. */
  function drawHeatmap() {
    var h = data.heatmap;
    if (!h || !h.rows.length || !h.columns.length) {
      var empty = document.getElementById('chart-heatmap');
      if (empty) { empty.classList.add('empty-chart'); empty.textContent = labels.noCalls || ''; }
      return;
    }
    var height = Math.max(240, 34 * h.rows.length + 190);
    var chart = make('chart-heatmap', height);
    if (!chart) { return; }
    var top = 0;
    h.cells.forEach(function (c) { if (c[2] !== null && c[2] > top) { top = c[2]; } });
    chart.setOption(merge({
      grid: { left: 8, right: 16, top: 8, bottom: 44, containLabel: true },
      tooltip: {
        formatter: function (p) {
          var c = p.data || [];
          return escapeHtml(h.rows[c[1]]) + ' · ' + escapeHtml(h.columns[c[0]]) + '<br>' +
            escapeHtml(labels.share) + ': ' + escapeHtml(fixed(c[2], 1)) + '%';
        }
      },
      xAxis: { type: 'category', data: h.columns, splitArea: { show: true },
               axisLabel: { color: ink, fontFamily: font, rotate: 35, interval: 0,
                            width: 110, overflow: 'truncate' } },
      yAxis: { type: 'category', data: h.rows, splitArea: { show: true }, inverse: true,
               axisLabel: { color: ink, fontFamily: font } },
      visualMap: {
        min: 0, max: Math.max(10, Math.ceil(top)), calculable: false, orient: 'horizontal',
        left: 'center', bottom: 0, itemHeight: 160, text: ['%', ''],
        textStyle: { color: muted, fontFamily: font },
        inRange: { color: ['#f4f8fd', '#9cc2f0', '#1d5fbf', '#7f1d1d'] }
      },
      series: [{
        type: 'heatmap', data: h.cells,
        label: { show: true, fontFamily: font, fontSize: 12,
                 formatter: function (p) { return p.data[2] ? Math.round(p.data[2]) + '%' : ''; } },
        emphasis: { itemStyle: { borderColor: ink, borderWidth: 1 } }
      }]
    }));
  }

  drawTrend();
  drawAbc();
  drawHeatmap();

  function resizeAll() {
    Object.keys(charts).forEach(function (id) { charts[id].resize(); });
  }
  if (window.ResizeObserver) {
    var observer = new ResizeObserver(resizeAll);
    Object.keys(charts).forEach(function (id) { observer.observe(document.getElementById(id)); });
  } else {
    window.addEventListener('resize', resizeAll);
  }

  window.callqaReport = { charts: charts };
}());
