/* kubetune dashboard: the jobs, job and trial pages, live over server-sent events, and the
   same job page from embedded data in an HTML report. Every value from a job is put into the
   page as text (textContent), and tooltips escape it, so nothing a job holds can run here. */
'use strict';
(function () {
  const CURVE_LIMIT = 200; // learning curves drawn: the best ones, and every running trial
  const PAGE_SIZE = 50; // trials table rows per page
  const LARGE = 2000; // points from which a scatter series draws in ECharts' large mode
  const STATE_COLORS = { Succeeded: '#2e9d5b', Failed: '#d13d3d', Stopped: '#c98a12',
    Stopping: '#c98a12', Running: '#2f6fde', Pending: '#98a2b3' };
  const report = document.getElementById('kubetune-report');

  // -- small helpers ----------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'text') node.textContent = value;
      else if (key === 'on') for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
      else node.setAttribute(key, value === true ? '' : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function esc(value) {
    return String(value).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;',
      '"': '&quot;', "'": '&#39;' }[c]));
  }
  function num(value) {
    if (value === null || value === undefined) return '-';
    if (typeof value !== 'number') return String(value);
    return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6)));
  }
  function seconds(total) {
    if (total === null || total === undefined) return '-';
    const s = Math.round(total);
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm' + String(s % 60).padStart(2, '0') + 's';
    return Math.floor(s / 3600) + 'h' + String(Math.floor((s % 3600) / 60)).padStart(2, '0') + 'm';
  }
  function age(iso) {
    if (!iso) return '-';
    return seconds((Date.now() - Date.parse(iso)) / 1000);
  }
  function duration(t) {
    if (t.duration !== null && t.duration !== undefined) return t.duration;
    if (!t.startTime || t.completionTime) return null;
    return (Date.now() - Date.parse(t.startTime)) / 1000;
  }
  function badge(phase) { return el('span', { class: 'badge ' + phase, text: phase }); }
  function progressBar(done, total) {
    const bar = el('span', { class: 'progress' }, el('span'));
    bar.firstChild.style.width = (total ? Math.min(100, (100 * done) / total) : 0) + '%';
    return bar;
  }
  function params(p) {
    return Object.entries(p).map(([k, v]) => k + '=' + num(v)).join(' ');
  }
  function trialHref(job, trial) {
    return '/jobs/' + encodeURIComponent(job) + '/trials/' + encodeURIComponent(trial);
  }
  function jobHref(job) { return '/jobs/' + encodeURIComponent(job); }
  function banner(text) {
    const node = document.getElementById('banner');
    if (!node) return;
    node.hidden = !text;
    node.textContent = text || '';
  }
  function card(title, ...children) {
    return el('section', { class: 'card' }, el('h2', { text: title }), ...children);
  }

  // -- the push channel: EventSource reconnects by itself; a refused reconnect is retried ----
  function stream(url, handlers) {
    let source = null;
    function open() {
      source = new EventSource(url);
      source.addEventListener('open', () => banner(null));
      source.addEventListener('error', () => {
        banner('Connection to the dashboard lost: reconnecting…');
        if (source.readyState === EventSource.CLOSED) setTimeout(open, 2000);
      });
      if (!handlers.problem) {
        source.addEventListener('problem', (e) => banner(JSON.parse(e.data).message + ' (retrying)'));
      }
      for (const [event, handle] of Object.entries(handlers)) {
        source.addEventListener(event, (e) => {
          if (event !== 'lines') banner(null);
          handle(JSON.parse(e.data));
        });
      }
    }
    open();
    return () => source && source.close();
  }

  // -- the jobs page --------------------------------------------------------------------------
  function jobsPage(app) {
    const phase = el('select', { 'aria-label': 'phase' },
      ['All phases', 'Pending', 'Running', 'Succeeded', 'Failed'].map((p) => el('option', { text: p })));
    const labels = el('input', { type: 'search', placeholder: 'label selector, e.g. team=vision',
      'aria-label': 'labels' });
    const body = el('tbody');
    const count = el('span', { class: 'muted' });
    let jobs = [];
    function matches(job) {
      if (phase.value !== 'All phases' && job.phase !== phase.value) return false;
      for (const term of labels.value.split(',').map((s) => s.trim()).filter(Boolean)) {
        const [key, value] = term.split('=').map((s) => s.trim());
        if (!(key in job.labels) || (value !== undefined && job.labels[key] !== value)) return false;
      }
      return true;
    }
    function draw() {
      const shown = jobs.filter(matches);
      count.textContent = shown.length + ' of ' + jobs.length + ' jobs';
      body.replaceChildren(...shown.map((j) => el('tr', { 'data-job': j.name },
        el('td', {}, el('a', { href: jobHref(j.name), text: j.name })),
        el('td', {}, badge(j.phase)),
        el('td', {}, progressBar(j.finished, j.maxTrials), j.progress || '-'),
        el('td', { class: 'num', title: j.bestTrial || '' }, num(j.best)),
        el('td', { text: j.metric + ' (' + j.direction + ')' }),
        el('td', { text: j.algorithm }),
        el('td', { text: j.earlyStopping }),
        el('td', { text: age(j.startTime) }),
        el('td', { class: 'wrap', text: Object.entries(j.labels).map(([k, v]) => k + '=' + v).join(', ') }))));
      document.body.dataset.ready = '1';
    }
    phase.addEventListener('change', draw);
    labels.addEventListener('input', draw);
    app.replaceChildren(el('h1', { text: 'Tuning jobs' }),
      card('Jobs', el('div', { class: 'controls' }, phase, labels, count),
        el('table', { id: 'jobs' }, el('thead', {}, el('tr', {}, ['Name', 'Phase', 'Progress', 'Best',
          'Objective', 'Algorithm', 'Early stopping', 'Age', 'Labels'].map((h) => el('th', { text: h })))),
        body)));
    stream('/api/jobs/stream', { jobs: (data) => { jobs = data.jobs; draw(); } });
  }

  // -- the job page ---------------------------------------------------------------------------
  function JobView(app, name, embedded) {
    this.name = name;
    this.embedded = embedded;
    this.job = null;
    this.trials = new Map();
    this.importance = [];
    this.charts = {};
    this.lookup = {}; // chart id -> per series, the trial of each data point
    this.visible = new Set();
    this.dirty = new Set();
    this.sort = { key: 'index', dir: 1 };
    this.page = 0;
    this.build(app);
  }
  JobView.prototype.build = function (app) {
    this.header = el('div');
    const chart = (id, cls) => el('div', { id: id, class: 'chart' + (cls ? ' ' + cls : '') });
    this.curvesNote = el('p', { class: 'note' });
    this.slices = el('div', { class: 'slices', id: 'slices' });
    this.stateFilter = el('select', { 'aria-label': 'state' }, ['All states', 'Pending', 'Running',
      'Stopping', 'Succeeded', 'Stopped', 'Failed'].map((s) => el('option', { text: s })));
    this.textFilter = el('input', { type: 'search', placeholder: 'filter: name, parameter, reason',
      'aria-label': 'filter' });
    this.tableHead = el('thead');
    this.tableBody = el('tbody');
    this.pager = el('div', { class: 'pager' });
    this.conditions = el('tbody');
    this.events = el('tbody');
    this.spec = el('pre', { id: 'spec' });
    const redraw = () => { this.page = 0; this.drawTable(); };
    this.stateFilter.addEventListener('change', redraw);
    this.textFilter.addEventListener('input', redraw);
    app.replaceChildren(this.header,
      el('div', { class: 'grid2' },
        card('Optimization history', chart('history')),
        card('Learning curves', chart('curves'), this.curvesNote)),
      this.paretoCard = card('Pareto front', chart('pareto'),
        el('p', { class: 'note', text: 'Trials that reported every objective; the front ' +
          '(no feasible trial is better in every objective) in blue, infeasible trials as crosses.' })),
      card('Parallel coordinates', chart('parallel')),
      el('div', { class: 'grid2' },
        card('Parameter importance', chart('importance', 'small'),
          el('p', { class: 'note', text: 'Mean decrease in impurity of a random forest fitted ' +
            'to the succeeded trials (scikit-learn).' })),
        card('Conditions', el('table', {}, el('thead', {}, el('tr', {}, ['Type', 'Status', 'Reason',
          'Message'].map((h) => el('th', { text: h })))), this.conditions))),
      card('Slices', this.slices),
      card('Trials', el('div', { class: 'controls' }, this.stateFilter, this.textFilter),
        el('div', { class: 'scroll' }, el('table', { id: 'trials' }, this.tableHead, this.tableBody)),
        this.pager),
      card('Recent events', el('table', {}, el('thead', {}, el('tr', {}, ['Time', 'Type', 'Reason',
        'Object', 'Message'].map((h) => el('th', { text: h })))), this.events)),
      card('Spec', this.spec));
    this.observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        this.visible.add(entry.target.id);
        if (this.job) this.render(entry.target.id);
      }
    }, { rootMargin: '200px' });
    this.paretoCard.hidden = true; // shown for jobs with several objectives
    for (const id of ['history', 'curves', 'parallel', 'importance']) {
      this.observer.observe(document.getElementById(id));
    }
  };
  JobView.prototype.snapshot = function (data) {
    performance.mark('kubetune-snapshot'); // benchmarks/dashboard_scale.py reads the marks
    this.job = data.job;
    this.trials = new Map(data.trials.map((t) => [t.name, t]));
    this.importance = data.importance;
    this.layoutSlices();
    this.drawAll();
  };
  JobView.prototype.update = function (data) {
    if (data.job) this.job = data.job;
    for (const t of data.trials || []) this.trials.set(t.name, t);
    if (data.importance) this.importance = data.importance;
    this.drawAll();
  };
  JobView.prototype.drawAll = function () {
    this.drawHeader();
    this.drawTable();
    this.drawStatus();
    if ((this.job.objectives || []).length >= 2) this.pareto(); // its card is hidden until now
    for (const id of this.visible) this.render(id);
    document.body.dataset.ready = '1';
    document.body.dataset.trials = String(this.trials.size);
    if (!performance.getEntriesByName('kubetune-ready').length) performance.mark('kubetune-ready');
  };
  JobView.prototype.ordered = function () {
    return Array.from(this.trials.values()).sort((a, b) => a.index - b.index);
  };
  JobView.prototype.better = function (a, b) {
    return this.job.direction === 'maximize' ? a > b : a < b;
  };
  JobView.prototype.open = function (trial) {
    if (this.embedded) { // a report has no trial pages: show the trial's row in the table
      this.textFilter.value = trial;
      this.page = 0;
      this.drawTable();
      const found = document.querySelector('#trials tbody tr');
      if (found) found.scrollIntoView({ block: 'center' });
      return;
    }
    window.location.href = trialHref(this.name, trial);
  };
  function warmText(w) {
    return w.points + (w.points === 1 ? ' earlier result feeds' : ' earlier results feed') + ' the model' +
      (w.leftOut ? ', ' + w.leftOut + ' left out' : '') +
      (w.enqueued ? ', ' + w.enqueued + (w.enqueued === 1 ? ' trial' : ' trials') + ' enqueued' : '');
  }
  function marks(t) {
    const on = [t.enqueued ? 'enqueued' : null, t.feasible === false ? 'infeasible' : null].filter(Boolean);
    return on.length ? el('span', { class: 'muted', text: ' ' + on.join(', ') }) : null;
  }
  JobView.prototype.drawHeader = function () {
    const j = this.job;
    document.title = j.name + ' - kubetune';
    const where = document.getElementById('where');
    if (where) where.textContent = j.namespace ? 'namespace ' + j.namespace : 'local';
    this.header.replaceChildren(
      el('h1', {}, el('span', { id: 'job-name', text: j.name }), badge(j.phase)),
      el('div', { class: 'facts' },
        el('div', {}, el('span', { text: 'progress' }), progressBar(j.finished, j.maxTrials), j.progress || '-'),
        el('div', {}, el('span', { text: 'best ' + j.metric + ' (' + j.direction + ')' }),
          j.bestTrial && !this.embedded ? el('a', { href: trialHref(j.name, j.bestTrial), text: num(j.best) })
            : num(j.best)),
        el('div', {}, el('span', { text: 'best trial' }), j.bestTrial || '-'),
        el('div', {}, el('span', { text: 'running' }), String(j.running)),
        el('div', {}, el('span', { text: 'algorithm' }), j.algorithm),
        el('div', {}, el('span', { text: 'early stopping' }), j.earlyStopping),
        el('div', {}, el('span', { text: 'started' }), j.startTime ? age(j.startTime) + ' ago' : '-'),
        j.warmStart ? el('div', { id: 'warm-start' }, el('span', { text: 'warm start' }), warmText(j.warmStart)) : null,
        j.message ? el('div', {}, el('span', { text: 'message' }), j.message) : null));
  };
  JobView.prototype.drawStatus = function () {
    const j = this.job;
    this.conditions.replaceChildren(...(j.conditions || []).map((c) => el('tr', {},
      el('td', { text: c.type }), el('td', { text: c.status }), el('td', { text: c.reason || '' }),
      el('td', { class: 'wrap', text: c.message || '' }))));
    const events = j.events || [];
    this.events.replaceChildren(...(events.length ? events.map((e) => el('tr', {},
      el('td', { text: e.time || '' }), el('td', { text: e.type }), el('td', { text: e.reason }),
      el('td', { text: e.object }), el('td', { class: 'wrap', text: e.message })))
      : [el('tr', {}, el('td', { colspan: 5, class: 'muted',
        text: j.namespace ? 'No events.' : 'Local runs post no events; trial reasons say what happened.' }))]));
    if (this.spec.textContent !== j.specYaml) this.spec.textContent = j.specYaml;
  };

  // -- the trials table --------------------------------------------------------------------------
  JobView.prototype.columns = function () {
    const cols = [
      { key: 'index', title: '#', value: (t) => t.index, num: true },
      { key: 'name', title: 'Trial', value: (t) => t.name },
      { key: 'state', title: 'State', value: (t) => t.state },
      { key: 'objective', title: this.job.metric, value: (t) => t.objective, num: true },
    ];
    for (const p of this.job.parameters) {
      cols.push({ key: 'p:' + p.name, title: p.name, value: (t) => t.params[p.name], num: p.type !== 'categorical' });
    }
    cols.push({ key: 'budget', title: this.job.resource || 'budget', value: (t) => t.budget, num: true });
    cols.push({ key: 'duration', title: 'Duration', value: duration, num: true });
    cols.push({ key: 'reason', title: 'Reason', value: (t) => t.reason });
    return cols;
  };
  JobView.prototype.drawTable = function () {
    const cols = this.columns();
    const col = cols.find((c) => c.key === this.sort.key) || cols[0];
    const state = this.stateFilter.value;
    const text = this.textFilter.value.trim().toLowerCase();
    let rows = Array.from(this.trials.values()).filter((t) => (state === 'All states' || t.state === state) &&
      (!text || (t.name + ' ' + params(t.params) + ' ' + (t.reason || '')).toLowerCase().includes(text)));
    const dir = this.sort.dir;
    rows.sort((a, b) => {
      const x = col.value(a), y = col.value(b);
      if (x === y) return a.index - b.index;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * dir;
    });
    const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
    this.page = Math.min(this.page, pages - 1);
    const shown = rows.slice(this.page * PAGE_SIZE, (this.page + 1) * PAGE_SIZE);
    this.tableHead.replaceChildren(el('tr', {}, cols.map((c) => el('th', {
      class: 'sortable' + (c.num ? ' num' : '') + (c.key === this.sort.key ? (dir > 0 ? ' sorted-asc' : ' sorted-desc') : ''),
      'data-key': c.key, text: c.title,
      on: { click: () => { this.sort = { key: c.key, dir: c.key === this.sort.key ? -dir : 1 }; this.drawTable(); } },
    }))));
    this.tableBody.replaceChildren(...shown.map((t) => el('tr', { 'data-trial': t.name }, cols.map((c) => {
      const v = c.value(t);
      if (c.key === 'name') {
        return el('td', {}, this.embedded ? t.name : el('a', { href: trialHref(this.name, t.name), text: t.name }));
      }
      if (c.key === 'state') return el('td', {}, badge(t.state), marks(t));
      if (c.key === 'duration') return el('td', { class: 'num', text: seconds(v) });
      return el('td', { class: c.num ? 'num' : (c.key === 'reason' ? 'wrap' : null), text: num(v) });
    }))));
    const back = el('button', { type: 'button', text: '‹ previous' });
    const next = el('button', { type: 'button', text: 'next ›' });
    back.disabled = this.page === 0;
    next.disabled = this.page >= pages - 1;
    back.addEventListener('click', () => { this.page -= 1; this.drawTable(); });
    next.addEventListener('click', () => { this.page += 1; this.drawTable(); });
    this.pager.replaceChildren(back, el('span', { class: 'muted', id: 'trial-count',
      text: 'page ' + (this.page + 1) + ' of ' + pages + ' (' + rows.length + ' of ' + this.trials.size + ' trials)' }), next);
  };

  // -- charts ----------------------------------------------------------------------------------
  JobView.prototype.chart = function (id) {
    if (!this.charts[id]) {
      const node = document.getElementById(id);
      const chart = echarts.init(node, null, { renderer: 'canvas' });
      chart.on('click', (e) => {
        const trial = this.trialAt(id, e);
        if (trial) this.open(trial);
      });
      this.charts[id] = chart;
      new ResizeObserver(() => chart.resize()).observe(node);
    }
    return this.charts[id];
  };
  JobView.prototype.tooltip = function (t) {
    const lines = ['<div class="tooltip-title">' + esc(t.name) + ' (' + esc(t.state) + ')</div>',
      '<div class="tooltip-row">' + esc(this.job.metric) + ' = ' + esc(num(t.objective)) + '</div>'];
    for (const [k, v] of Object.entries(t.params)) {
      lines.push('<div class="tooltip-row">' + esc(k) + ' = ' + esc(num(v)) + '</div>');
    }
    return lines.join('');
  };
  JobView.prototype.trialAt = function (id, p) {
    const names = (this.lookup[id] || [])[p.seriesIndex];
    return names ? names[p.dataIndex] : undefined;
  };
  JobView.prototype.tooltipOption = function (id) {
    return { trigger: 'item', confine: true, formatter: (p) => {
      const t = this.trials.get(this.trialAt(id, p));
      return t ? this.tooltip(t) : esc(p.seriesName);
    } };
  };
  JobView.prototype.render = function (id) {
    if (!this.job || typeof echarts === 'undefined') return;
    if (id === 'history') this.history();
    else if (id === 'curves') this.curves();
    else if (id === 'parallel') this.parallel();
    else if (id === 'importance') this.importanceChart();
    else if (id === 'pareto') this.pareto();
    else if (id.startsWith('slice-')) this.slice(id);
  };
  JobView.prototype.pareto = function () {
    const goals = this.job.objectives || [];
    this.paretoCard.hidden = goals.length < 2;
    if (goals.length < 2) return;
    const [a, b] = goals;
    const front = new Set(this.job.front || []);
    const groups = { trial: [], infeasible: [], 'Pareto front': [] };
    for (const t of this.ordered()) {
      const x = t.metrics[a.metric], y = t.metrics[b.metric];
      if (x === null || x === undefined || y === null || y === undefined || t.state === 'Failed') continue;
      const key = front.has(t.name) ? 'Pareto front' : (t.feasible === false ? 'infeasible' : 'trial');
      groups[key].push(t);
    }
    const look = { trial: ['circle', '#9aa0a6'], infeasible: ['path://M0,0L10,10M10,0L0,10', '#d93025'],
      'Pareto front': ['circle', '#1a73e8'] };
    const series = Object.entries(groups).map(([name, ts]) => ({ name: name, type: 'scatter',
      data: ts.map((t) => [t.metrics[a.metric], t.metrics[b.metric]]), symbol: look[name][0],
      symbolSize: 8, itemStyle: { color: look[name][1], borderColor: look[name][1] } }));
    this.lookup.pareto = Object.values(groups).map((ts) => ts.map((t) => t.name));
    document.getElementById('pareto').dataset.points = String(groups['Pareto front'].length);
    const axis = (g) => ({ type: 'value', scale: true, name: g.metric + ' (' +
      (g.direction === 'minimize' ? 'lower' : 'higher') + ' is better)', nameLocation: 'middle', nameGap: 30 });
    this.chart('pareto').setOption({
      animation: false, tooltip: this.tooltipOption('pareto'), legend: { top: 0 },
      grid: { left: 70, right: 20, top: 40, bottom: 50 }, xAxis: axis(a), yAxis: axis(b), series: series,
    }, { replaceMerge: ['series'] });
  };
  JobView.prototype.history = function () {
    const groups = {};
    const best = [];
    let current = null;
    let points = 0;
    for (const t of this.ordered()) {
      if (t.objective === null || t.objective === undefined) continue;
      (groups[t.state] = groups[t.state] || []).push(t);
      points += 1;
      if (t.state === 'Succeeded' && (current === null || this.better(t.objective, current))) current = t.objective;
      if (current !== null) best.push([t.index, current]);
    }
    const series = Object.entries(groups).map(([state, ts]) => ({ name: state, type: 'scatter',
      data: ts.map((t) => [t.index, t.objective]), symbolSize: 7, itemStyle: { color: STATE_COLORS[state] },
      large: ts.length > LARGE, largeThreshold: LARGE }));
    this.lookup.history = Object.values(groups).map((ts) => ts.map((t) => t.name));
    series.push({ name: 'best so far', type: 'line', step: 'end', data: best, symbol: 'none',
      lineStyle: { color: '#1d2330', width: 2 }, itemStyle: { color: '#1d2330' }, silent: true,
      tooltip: { show: false } });
    document.getElementById('history').dataset.points = String(points);
    this.chart('history').setOption({
      animation: false, tooltip: this.tooltipOption('history'), legend: { top: 0 },
      grid: { left: 60, right: 20, top: 40, bottom: 40 },
      xAxis: { type: 'value', name: 'trial', nameLocation: 'middle', nameGap: 25, minInterval: 1 },
      yAxis: { type: 'value', name: this.job.metric, scale: true },
      dataZoom: [{ type: 'inside' }], series: series,
    }, { replaceMerge: ['series'] });
  };
  JobView.prototype.curves = function () {
    const all = this.ordered().filter((t) => t.curve.length);
    const maximize = this.job.direction === 'maximize';
    const running = all.filter((t) => t.state === 'Running' || t.state === 'Pending');
    const ranked = all.filter((t) => !running.includes(t) && t.objective !== null)
      .sort((a, b) => (maximize ? b.objective - a.objective : a.objective - b.objective));
    const shown = running.concat(ranked).slice(0, Math.max(CURVE_LIMIT, running.length));
    const series = shown.map((t) => ({ name: t.name, type: 'line', showSymbol: false, sampling: 'lttb',
      data: t.curve,
      lineStyle: { width: 1.2, color: STATE_COLORS[t.state] || '#98a2b3', opacity: 0.75 },
      itemStyle: { color: STATE_COLORS[t.state] || '#98a2b3' }, emphasis: { focus: 'series' } }));
    const stopped = shown.filter((t) => t.state === 'Stopped');
    this.lookup.curves = shown.map((t) => t.curve.map(() => t.name)).concat([stopped.map((t) => t.name)]);
    series.push({ name: 'stopped early', type: 'scatter', data: stopped.map((t) => t.curve[t.curve.length - 1]), symbol: 'triangle', symbolSize: 9,
      itemStyle: { color: STATE_COLORS.Stopped }, z: 5 });
    if ((this.job.rungs || []).length) {
      series.push({ name: 'rungs', type: 'line', data: [], silent: true,
        markLine: { symbol: 'none', label: { formatter: 'rung {c}', position: 'insideEndTop' }, lineStyle: { type: 'dashed', color: '#98a2b3' },
          data: this.job.rungs.map((r) => ({ xAxis: r })) } });
    }
    document.getElementById('curves').dataset.curves = String(shown.length);
    this.curvesNote.textContent = (shown.length < all.length ? 'The best ' + ranked.slice(0, shown.length - running.length).length +
      ' of ' + all.length + ' curves, and every running trial. ' : '') +
      'Triangles: trials stopped early. Dashed lines: ASHA/Hyperband rungs.';
    this.chart('curves').setOption({
      animation: false, tooltip: this.tooltipOption('curves'),
      grid: { left: 60, right: 20, top: 20, bottom: 40 },
      xAxis: { type: 'value', name: this.job.resource || 'step', nameLocation: 'middle', nameGap: 25 },
      yAxis: { type: 'value', name: this.job.metric, scale: true },
      dataZoom: [{ type: 'inside' }], series: series,
    }, { replaceMerge: ['series'] });
  };
  JobView.prototype.axis = function (p, index) {
    if (p.type === 'categorical') return { dim: index, name: p.name, type: 'category', data: p.values.map(String) };
    return { dim: index, name: p.name, type: p.log ? 'log' : 'value', min: p.min, max: p.max };
  };
  JobView.prototype.parallel = function () {
    const ps = this.job.parameters;
    const done = this.ordered().filter((t) => t.objective !== null && t.objective !== undefined);
    const axes = ps.map((p, i) => this.axis(p, i));
    axes.push({ dim: ps.length, name: this.job.metric, type: 'value', scale: true });
    const values = done.map((t) => t.objective);
    const data = done.map((t) => ps.map((p) => (p.type === 'categorical' ? String(t.params[p.name]) : t.params[p.name]))
      .concat([t.objective]));
    this.lookup.parallel = [done.map((t) => t.name)];
    document.getElementById('parallel').dataset.lines = String(data.length);
    this.chart('parallel').setOption({
      animation: false, tooltip: this.tooltipOption('parallel'),
      parallel: { left: 60, right: 130, top: 40, bottom: 30 }, parallelAxis: axes,
      visualMap: { show: true, type: 'continuous', dimension: ps.length, right: 10, top: 'center',
        min: values.length ? Math.min(...values) : 0, max: values.length ? Math.max(...values) : 1,
        inRange: { color: this.job.direction === 'maximize' ? ['#c6d4ee', '#2f6fde', '#0b2a6b'] : ['#0b2a6b', '#2f6fde', '#c6d4ee'] },
        calculable: true, itemHeight: 120 },
      series: [{ name: this.job.metric, type: 'parallel', data: data, progressive: 2000, smooth: false,
        lineStyle: { width: 1, opacity: 0.45 }, emphasis: { lineStyle: { width: 3, opacity: 1 } } }],
    }, { replaceMerge: ['series', 'parallelAxis'] });
  };
  JobView.prototype.layoutSlices = function () {
    const ids = this.job.parameters.map((p, i) => 'slice-' + i);
    if (this.slices.childElementCount === ids.length) return;
    this.slices.replaceChildren(...this.job.parameters.map((p, i) => el('div', {},
      el('div', { class: 'muted', text: p.name + (p.log ? ' (log scale)' : '') }),
      el('div', { id: ids[i], class: 'chart small' }))));
    for (const id of ids) this.observer.observe(document.getElementById(id));
  };
  JobView.prototype.slice = function (id) {
    const p = this.job.parameters[Number(id.slice(6))];
    if (!p) return;
    const done = this.ordered().filter((t) => t.objective !== null && t.objective !== undefined);
    const data = done.map((t) => [p.type === 'categorical' ? String(t.params[p.name]) : t.params[p.name], t.objective]);
    this.lookup[id] = [done.map((t) => t.name)];
    this.chart(id).setOption({
      animation: false, tooltip: this.tooltipOption(id),
      grid: { left: 55, right: 15, top: 15, bottom: 30 },
      xAxis: p.type === 'categorical' ? { type: 'category', data: p.values.map(String) }
        : { type: p.log ? 'log' : 'value', scale: true, min: p.min, max: p.max },
      yAxis: { type: 'value', scale: true, name: this.job.metric },
      series: [{ name: p.name, type: 'scatter', data: data, symbolSize: 6, itemStyle: { color: '#2f6fde', opacity: 0.7 },
        large: data.length > LARGE, largeThreshold: LARGE }],
    }, { replaceMerge: ['series'] });
  };
  JobView.prototype.importanceChart = function () {
    const ranked = this.importance.slice().reverse();
    document.getElementById('importance').dataset.bars = String(ranked.length);
    this.chart('importance').setOption({
      animation: false, tooltip: { trigger: 'item', formatter: (p) => esc(p.name) + ': ' + esc(num(p.value)) },
      grid: { left: 110, right: 20, top: 10, bottom: 30 },
      title: ranked.length ? undefined : { text: 'Shown once 4 trials have succeeded', left: 'center', top: 'middle',
        textStyle: { fontSize: 13, color: '#667085', fontWeight: 'normal' } },
      xAxis: { type: 'value', max: 1 }, yAxis: { type: 'category', data: ranked.map((r) => r.name) },
      series: [{ type: 'bar', data: ranked.map((r) => ({ name: r.name, value: r.importance })), itemStyle: { color: '#2f6fde' } }],
    }, { replaceMerge: ['series', 'title'] });
  };

  function jobPage(app, name) {
    const view = new JobView(app, name, false);
    stream('/api/jobs/' + encodeURIComponent(name) + '/stream', {
      snapshot: (data) => view.snapshot(data),
      update: (data) => view.update(data),
      resync: () => window.location.reload(),
      gone: (data) => banner(data.message),
    });
  }

  // -- the trial page ------------------------------------------------------------------------
  function trialPage(app, job, name) {
    const header = el('div');
    const facts = el('tbody');
    const paramRows = el('tbody');
    const metricRows = el('tbody');
    const lineage = el('div', { class: 'lineage' });
    const logs = el('pre', { class: 'logs', id: 'logs' });
    const logState = el('span', { class: 'muted', id: 'log-state', text: 'connecting…' });
    const curveNode = el('div', { id: 'curve', class: 'chart' });
    app.replaceChildren(header,
      el('div', { class: 'grid2' },
        card('Trial', el('table', {}, facts)),
        card('Parameters', el('table', {}, paramRows), el('h2', { text: 'Latest metrics' }), el('table', {}, metricRows))),
      card('Learning curve', curveNode, lineage),
      card('Logs', el('p', {}, logState), logs));
    let chart = null;
    const rows = new Map();
    let job_ = null;
    function draw() {
      const t = rows.get(name);
      if (!t || !job_) return;
      document.title = t.name + ' - kubetune';
      header.replaceChildren(el('p', {}, el('a', { href: jobHref(job), text: '‹ ' + job })),
        el('h1', {}, el('span', { id: 'trial-name', text: t.name }), badge(t.state)));
      const fact = (k, v) => el('tr', {}, el('th', { text: k }), el('td', { class: 'wrap' }, v));
      const state = [t.state, t.enqueued ? 'enqueued (warm start)' : null, t.feasible === false ? 'infeasible' : null];
      facts.replaceChildren(fact('state', state.filter(Boolean).join(', ')), fact('reason', t.reason || '-'),
        fact('exit code', num(t.exitCode)), fact(job_.metric + ' (best)', num(t.objective)),
        fact(job_.resource || 'budget', num(t.budget)), fact('started', t.startTime || '-'),
        fact('completed', t.completionTime || '-'), fact('duration', seconds(duration(t))),
        fact('retries', String(t.retries)),
        fact('continues', t.continues ? el('a', { href: trialHref(job, t.continues), text: t.continues + ' (after step ' + t.resumeStep + ')' }) : '-'));
      paramRows.replaceChildren(...Object.entries(t.params).map(([k, v]) => el('tr', {}, el('th', { text: k }), el('td', { text: num(v) }))));
      metricRows.replaceChildren(...Object.entries(t.metrics).map(([k, v]) => el('tr', {}, el('th', { text: k }), el('td', { class: 'num', text: num(v) }))));
      const chain = Array.from(rows.values());
      lineage.replaceChildren(...(chain.length > 1 ? [el('span', { class: 'muted', text: 'Lineage: ' }),
        ...chain.map((r, i) => [i ? ' → ' : '', el('a', { href: trialHref(job, r.name), class: r.name === name ? 'current' : null, text: r.name })])] : []));
      if (typeof echarts === 'undefined') return;
      chart = chart || echarts.init(curveNode);
      const series = chain.map((r) => ({ name: r.name, type: 'line', showSymbol: r.curve.length < 60,
        data: r.curve, lineStyle: { width: r.name === name ? 2.5 : 1.2, opacity: r.name === name ? 1 : 0.6 } }));
      curveNode.dataset.points = String(t.curve.length);
      chart.setOption({ animation: false, legend: { top: 0 }, tooltip: { trigger: 'axis', valueFormatter: (v) => esc(num(v)) },
        grid: { left: 60, right: 20, top: 40, bottom: 40 },
        xAxis: { type: 'value', name: job_.resource || 'step', nameLocation: 'middle', nameGap: 25 },
        yAxis: { type: 'value', name: job_.metric, scale: true }, series: series }, { replaceMerge: ['series'] });
      document.body.dataset.ready = '1';
    }
    stream('/api/jobs/' + encodeURIComponent(job) + '/stream?trial=' + encodeURIComponent(name), {
      snapshot: (data) => { job_ = data.job; rows.clear(); for (const t of data.trials) rows.set(t.name, t); draw(); },
      update: (data) => { if (data.job) job_ = data.job; for (const t of data.trials || []) if (rows.has(t.name) || t.continues === name) rows.set(t.name, t); draw(); },
      resync: () => window.location.reload(),
      gone: (data) => banner(data.message),
    });
    let lines = 0;
    const follow = stream('/api/jobs/' + encodeURIComponent(job) + '/trials/' + encodeURIComponent(name) + '/logs', {
      lines: (data) => {
        const atEnd = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4;
        if (data.skipped) logs.append('… ' + data.skipped + ' earlier lines not shown\n');
        logs.append(data.lines.join('\n') + '\n');
        lines += data.lines.length;
        logs.dataset.lines = String(lines);
        logState.textContent = 'following (' + lines + ' lines)';
        if (atEnd) logs.scrollTop = logs.scrollHeight;
      },
      end: () => { logState.textContent = 'the trial has ended (' + lines + ' lines)'; follow(); },
      problem: (data) => { logState.textContent = data.message; follow(); },
    });
  }

  // -- routing ---------------------------------------------------------------------------------
  function start() {
    const app = document.getElementById('app');
    if (report) {
      const data = JSON.parse(report.textContent);
      const view = new JobView(app, data.job.name, true);
      view.snapshot(data);
      return;
    }
    const path = window.location.pathname.replace(/\/+$/, '') || '/';
    let m;
    if (path === '/') jobsPage(app);
    else if ((m = path.match(/^\/jobs\/([^/]+)$/))) jobPage(app, decodeURIComponent(m[1]));
    else if ((m = path.match(/^\/jobs\/([^/]+)\/trials\/([^/]+)$/))) trialPage(app, decodeURIComponent(m[1]), decodeURIComponent(m[2]));
    else app.replaceChildren(el('h1', { text: 'Not found' }));
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
