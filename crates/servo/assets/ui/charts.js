// The study charts, shared by `servo report` (one offline HTML file) and the application page of
// `servo optimizer serve`. Input: the StudyView JSON (crates/servo/src/ui/view.rs). Drawing is
// ECharts (vendored); this file only decides what to draw and how numbers read.
'use strict';

(function (global) {
  // Okabe & Ito's palette: distinguishable with every common colour-vision deficiency. Feasibility
  // is also told by the marker's shape, never by colour alone.
  const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#F0E442', '#000000'];
  const MEETS = PALETTE[0];
  const MISSES = PALETTE[3];
  const BEST = PALETTE[2];
  // A value axis turns logarithmic when its values span more than this ratio.
  const LOG_RATIO = 30;

  // At most four significant digits, without exponent for everyday magnitudes.
  function sig(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return '';
    if (!Number.isFinite(v)) return v > 0 ? '∞' : '-∞';
    if (v === 0) return '0';
    const a = Math.abs(v);
    if (a >= 1e4) return si(v);
    if (a < 1e-3) return v.toExponential(2).replace('e+', 'e');
    let s = v.toPrecision(4);
    if (s.includes('e')) s = String(Number(s));
    if (s.includes('.')) s = s.replace(/\.?0+$/, '');
    return s;
  }

  function si(v) {
    const a = Math.abs(v);
    const steps = [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
    for (const [size, suffix] of steps) {
      if (a >= size) return sig(v / size) + suffix;
    }
    return sig(v);
  }

  // The display scale of a unit for values up to `max`: a factor and the unit shown, so an axis of
  // bytes reads in MiB with round ticks rather than in 8-digit byte counts.
  function scaleFor(unit, max) {
    const u = (unit || '').trim();
    const lu = u.toLowerCase();
    const a = Math.abs(max || 0);
    const pick = (base, ladder) => {
      let chosen = ladder[0];
      for (const step of ladder) if (a * base >= step[0] * 0.999) chosen = step;
      return { factor: base / chosen[0], unit: chosen[1] };
    };
    if (['b', 'by', 'byte', 'bytes'].includes(lu)) {
      return pick(1, [[1, 'B'], [1024, 'KiB'], [1024 ** 2, 'MiB'], [1024 ** 3, 'GiB'], [1024 ** 4, 'TiB']]);
    }
    const seconds = { ns: 1e-9, nanoseconds: 1e-9, us: 1e-6, 'µs': 1e-6, microseconds: 1e-6, ms: 1e-3,
      milliseconds: 1e-3, s: 1, sec: 1, second: 1, seconds: 1, m: 60, min: 60, minutes: 60, h: 3600, hours: 3600 }[lu];
    if (seconds !== undefined) {
      return pick(seconds, [[1e-9, 'ns'], [1e-6, 'µs'], [1e-3, 'ms'], [1, 's'], [60, 'min'], [3600, 'h']]);
    }
    if (lu === 'ratio') return { factor: 100, unit: '%' };
    if (lu === 'millicores') return a >= 1000 ? { factor: 1e-3, unit: 'cores' } : { factor: 1, unit: 'millicores' };
    if (lu === 'cores' || lu === 'core') return a < 1 ? { factor: 1000, unit: 'millicores' } : { factor: 1, unit: 'cores' };
    return { factor: 1, unit: u };
  }

  // A value with its unit, for tooltips and tables: `236.4 MiB`, `48 ms`, `12.5 %`.
  function human(v, unit) {
    if (v === null || v === undefined) return '';
    const scale = scaleFor(unit, v);
    const n = sig(v * scale.factor);
    if (!scale.unit) return n;
    return scale.unit === '%' ? `${n} %` : `${n} ${scale.unit}`;
  }

  function axisName(name, unit) {
    return unit ? `${name} (${unit})` : name;
  }

  // A value axis for `values` (already scaled): logarithmic when they are positive and span more
  // than LOG_RATIO, else linear; labels never carry more than four significant digits.
  function valueAxis(name, values, extra) {
    const finite = values.filter((v) => Number.isFinite(v));
    const min = Math.min(...finite);
    const max = Math.max(...finite);
    const log = finite.length > 1 && min > 0 && max / min > LOG_RATIO;
    return Object.assign({
      type: log ? 'log' : 'value',
      name,
      nameLocation: 'middle',
      nameGap: 48,
      scale: true,
      axisLabel: { formatter: (v) => sig(v), hideOverlap: true },
      splitLine: { show: true, lineStyle: { color: '#e5e5e5' } },
    }, extra || {});
  }

  function base(title) {
    return {
      color: PALETTE,
      animation: false,
      aria: { enabled: true, decal: { show: false } },
      title: { text: title, left: 'left', textStyle: { fontSize: 14, fontWeight: 600 } },
      grid: { left: 72, right: 24, top: 48, bottom: 56, containLabel: false },
      tooltip: { trigger: 'item', confine: true },
      legend: { top: 22, right: 8, textStyle: { fontSize: 11 } },
    };
  }

  function completeTrials(view) {
    return view.trials.filter((t) => t.state === 'complete' && t.objective !== null && t.objective !== undefined);
  }

  function objectiveOption(view) {
    const trials = completeTrials(view);
    const unit = view.objective.unit;
    const scale = scaleFor(unit, Math.max(...trials.map((t) => Math.abs(t.objective)), 0));
    const point = (t) => ({ value: [t.number, t.objective * scale.factor], trial: t.number });
    const tooltip = (p) => `trial ${p.data.trial}: ${human(p.data.value[1] / scale.factor, unit)}`;
    const option = base('Objective per trial');
    const baseline = view.trials.find((t) => t.number === view.baseline);
    option.xAxis = { type: 'value', name: 'trial', nameLocation: 'middle', nameGap: 32, minInterval: 1,
      axisLabel: { formatter: (v) => sig(v) }, splitLine: { lineStyle: { color: '#eee' } } };
    option.yAxis = valueAxis(axisName(view.objective.text, scale.unit), trials.map((t) => t.objective * scale.factor));
    option.series = [
      { name: 'meets every SLO', type: 'scatter', symbol: 'circle', symbolSize: 9, itemStyle: { color: MEETS },
        data: trials.filter((t) => t.feasible === true).map(point), tooltip: { formatter: tooltip } },
      { name: 'misses an SLO', type: 'scatter', symbol: 'triangle', symbolSize: 10,
        itemStyle: { color: 'rgba(0,0,0,0)', borderColor: MISSES, borderWidth: 2 },
        data: trials.filter((t) => t.feasible !== true).map(point), tooltip: { formatter: tooltip } },
      { name: 'best so far', type: 'line', step: 'end', showSymbol: false, lineStyle: { color: BEST, width: 2 },
        itemStyle: { color: BEST }, data: view.best_so_far.map(([n, v]) => [n, v * scale.factor]),
        markLine: baseline && baseline.objective !== null ? { symbol: 'none', silent: true,
          lineStyle: { type: 'dashed', color: '#666' },
          label: { formatter: 'baseline', position: 'insideEndTop' },
          data: [{ yAxis: baseline.objective * scale.factor }] } : undefined },
    ];
    return option;
  }

  // Two objectives against each other: every complete trial, the Pareto front joined and
  // highlighted, and the point selected as best ringed. With more than two objectives, the
  // first two are drawn.
  function paretoOption(view) {
    const p = view.pareto;
    const [a, b] = p.objectives;
    const xs = p.points.map((q) => q.values[0]);
    const ys = p.points.map((q) => q.values[1]);
    const sx = scaleFor(a.unit, Math.max(...xs.map(Math.abs), 0));
    const sy = scaleFor(b.unit, Math.max(...ys.map(Math.abs), 0));
    const point = (q) => ({ value: [q.values[0] * sx.factor, q.values[1] * sy.factor], trial: q.trial });
    const tooltip = (q) => `trial ${q.data.trial}: ${a.expression} = ${human(q.data.value[0] / sx.factor, a.unit)}, `
      + `${b.expression} = ${human(q.data.value[1] / sy.factor, b.unit)}`;
    const option = base(`Pareto front: ${a.expression} and ${b.expression}`);
    option.xAxis = valueAxis(axisName(a.expression, sx.unit) + (a.maximize ? ', → better' : ', ← better'),
      xs.map((v) => v * sx.factor), { nameGap: 32 });
    option.yAxis = valueAxis(axisName(b.expression, sy.unit) + (b.maximize ? ', ↑ better' : ', ↓ better'),
      ys.map((v) => v * sy.factor));
    const front = p.points.filter((q) => q.front).sort((q, r) => q.values[0] - r.values[0]);
    const selected = p.points.find((q) => q.trial === p.selected);
    option.series = [
      { name: 'meets every SLO', type: 'scatter', symbolSize: 8, itemStyle: { color: MEETS, opacity: 0.6 },
        data: p.points.filter((q) => q.feasible && !q.front).map(point), tooltip: { formatter: tooltip } },
      { name: 'misses an SLO', type: 'scatter', symbol: 'triangle', symbolSize: 9,
        itemStyle: { color: 'rgba(0,0,0,0)', borderColor: MISSES, borderWidth: 2 },
        data: p.points.filter((q) => !q.feasible).map(point), tooltip: { formatter: tooltip } },
      // Two objectives: the front joined by the edge of the region it dominates. More: the
      // front's points in this projection, unjoined (some may look dominated in it).
      { name: 'Pareto front', type: p.objectives.length === 2 ? 'line' : 'scatter',
        step: a.maximize ? 'start' : 'end', symbol: 'diamond',
        symbolSize: 11, lineStyle: { color: BEST, width: 2 }, itemStyle: { color: BEST },
        data: front.map(point), tooltip: { formatter: tooltip } },
      { name: `best (${p.rule})`, type: 'scatter', symbol: 'circle', symbolSize: 20, z: 5,
        itemStyle: { color: 'rgba(0,0,0,0)', borderColor: '#000', borderWidth: 2.5 },
        data: selected ? [point(selected)] : [], tooltip: { formatter: tooltip } },
    ];
    option.tooltip = { trigger: 'item', confine: true };
    return option;
  }

  // A setting against the objective. Categorical settings get one column per choice, the points
  // spread sideways a little so repeated trials of one choice stay visible.
  function sliceOption(view, setting) {
    const trials = completeTrials(view).filter((t) => t.config[setting.name] !== undefined);
    const unit = view.objective.unit;
    const scale = scaleFor(unit, Math.max(...trials.map((t) => Math.abs(t.objective)), 0));
    const option = base(setting.name);
    option.legend = { show: false };
    const x = (t, i) => {
      const v = t.config[setting.name];
      if (!setting.categorical) return Number(v);
      const index = setting.choices.indexOf(String(v));
      return index + (((i * 37) % 11) - 5) * 0.03;
    };
    const point = (t, i) => ({ value: [x(t, i), t.objective * scale.factor], trial: t.number,
      shown: String(t.config[setting.name]) });
    const tooltip = (p) => `trial ${p.data.trial}: ${setting.name} = ${p.data.shown}<br>${view.objective.text} = ${human(p.data.value[1] / scale.factor, unit)}`;
    if (setting.categorical) {
      const at = setting.choices.map((_, i) => i);
      option.xAxis = { type: 'value', name: setting.name, nameLocation: 'middle', nameGap: 32,
        min: -0.5, max: setting.choices.length - 0.5,
        axisLabel: { customValues: at, formatter: (v) => setting.choices[Math.round(v)] || '' },
        axisTick: { customValues: at }, splitLine: { show: false } };
    } else {
      option.xAxis = valueAxis(setting.name, trials.map((t) => Number(t.config[setting.name])),
        setting.integer ? { nameGap: 32, minInterval: 1 } : { nameGap: 32 });
    }
    option.yAxis = valueAxis(axisName(view.objective.text, scale.unit), trials.map((t) => t.objective * scale.factor));
    const meets = [];
    const misses = [];
    trials.forEach((t, i) => (t.feasible === true ? meets : misses).push(point(t, i)));
    option.series = [
      { name: 'meets every SLO', type: 'scatter', symbolSize: 8, itemStyle: { color: MEETS }, data: meets,
        tooltip: { formatter: tooltip } },
      { name: 'misses an SLO', type: 'scatter', symbol: 'triangle', symbolSize: 9,
        itemStyle: { color: 'rgba(0,0,0,0)', borderColor: MISSES, borderWidth: 2 }, data: misses,
        tooltip: { formatter: tooltip } },
    ];
    return option;
  }

  function parallelOption(view) {
    const trials = completeTrials(view);
    const unit = view.objective.unit;
    const scale = scaleFor(unit, Math.max(...trials.map((t) => Math.abs(t.objective)), 0));
    const option = base('Settings and objective (parallel coordinates)');
    option.grid = undefined;
    option.parallel = { left: 60, right: 90, top: 70, bottom: 40 };
    option.parallelAxis = view.settings.map((s, dim) => (s.categorical
      ? { dim, name: s.name, type: 'category', data: s.choices }
      : { dim, name: s.name, type: 'value', scale: true, minInterval: s.integer ? 1 : 0,
        axisLabel: { formatter: (v) => sig(v) } }));
    option.parallelAxis.push({ dim: view.settings.length, name: axisName(view.objective.text, scale.unit),
      type: 'value', scale: true, axisLabel: { formatter: (v) => sig(v) } });
    const row = (t) => view.settings.map((s) => (s.categorical ? String(t.config[s.name]) : Number(t.config[s.name])))
      .concat([t.objective * scale.factor]);
    option.series = [
      { name: 'meets every SLO', type: 'parallel', lineStyle: { color: MEETS, width: 1.5, opacity: 0.7 },
        data: trials.filter((t) => t.feasible === true).map(row) },
      { name: 'misses an SLO', type: 'parallel', lineStyle: { color: MISSES, width: 1, opacity: 0.5, type: 'dashed' },
        data: trials.filter((t) => t.feasible !== true).map(row) },
    ];
    option.tooltip = { show: false };
    return option;
  }

  function sloOption(view, slo) {
    const trials = completeTrials(view).filter((t) => t.readings[slo.metric]);
    const values = trials.map((t) => t.readings[slo.metric].value);
    const scale = scaleFor(slo.unit, Math.max(...values.map(Math.abs), Math.abs(slo.limit || 0), 0));
    const option = base(slo.text);
    const index = view.slos.indexOf(slo);
    // Whether this SLO held in a trial: its own violation, not the trial's overall feasibility.
    const held = (t) => t.constraints && t.constraints[index] !== undefined ? t.constraints[index] <= 0 : t.feasible === true;
    const point = (t) => ({ value: [t.number, t.readings[slo.metric].value * scale.factor], trial: t.number });
    const tooltip = (p) => `trial ${p.data.trial}: ${slo.metric} = ${human(p.data.value[1] / scale.factor, slo.unit)}`;
    option.xAxis = { type: 'value', name: 'trial', nameLocation: 'middle', nameGap: 32, minInterval: 1,
      axisLabel: { formatter: (v) => sig(v) }, splitLine: { lineStyle: { color: '#eee' } } };
    const all = values.map((v) => v * scale.factor);
    if (slo.limit !== null && slo.limit !== undefined) all.push(slo.limit * scale.factor);
    option.yAxis = valueAxis(axisName(slo.metric, scale.unit), all);
    option.series = [
      { name: 'holds', type: 'scatter', symbolSize: 8, itemStyle: { color: MEETS },
        data: trials.filter(held).map(point), tooltip: { formatter: tooltip } },
      { name: 'breached', type: 'scatter', symbol: 'triangle', symbolSize: 9,
        itemStyle: { color: 'rgba(0,0,0,0)', borderColor: MISSES, borderWidth: 2 },
        data: trials.filter((t) => !held(t)).map(point), tooltip: { formatter: tooltip },
        markLine: slo.limit !== null && slo.limit !== undefined ? { symbol: 'none', silent: true,
          lineStyle: { type: 'dashed', color: MISSES, width: 1.5 },
          label: { formatter: `limit ${human(slo.limit, slo.unit)}`, position: 'insideEndTop' },
          data: [{ yAxis: slo.limit * scale.factor }] } : undefined },
    ];
    return option;
  }

  function importanceOption(view) {
    const option = base('Setting importance (share of the objective\'s variance)');
    option.legend = { show: false };
    option.grid = { left: 140, right: 24, top: 40, bottom: 40 };
    const rows = view.importance.slice().reverse();
    option.xAxis = { type: 'value', min: 0, max: 100, name: '%', axisLabel: { formatter: (v) => sig(v) },
      splitLine: { lineStyle: { color: '#eee' } } };
    option.yAxis = { type: 'category', data: rows.map((r) => r.setting) };
    option.series = [{ type: 'bar', itemStyle: { color: MEETS }, data: rows.map((r) => Math.round(r.share * 1000) / 10),
      tooltip: { formatter: (p) => `${p.name}: ${sig(p.value)} % of the variance` } }];
    return option;
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') node.textContent = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  function cell(value) {
    return value === null || value === undefined ? '' : String(value);
  }

  // The rows the trials table and the downloads share: one per trial, a column per setting and SLO.
  function rows(view) {
    return view.trials.map((t) => {
      const row = { trial: t.number, state: t.state };
      for (const s of view.settings) row[s.name] = t.config[s.name];
      row.objective = t.objective;
      row.meets_slos = t.feasible;
      for (const slo of view.slos) row[slo.metric] = t.readings[slo.metric] ? t.readings[slo.metric].value : null;
      row.note = t.error || '';
      return row;
    });
  }

  function csv(view) {
    const data = rows(view);
    const columns = data.length ? Object.keys(data[0]) : ['trial'];
    const quote = (v) => {
      const s = cell(v);
      return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
    };
    return [columns.join(',')].concat(data.map((r) => columns.map((c) => quote(r[c])).join(','))).join('\n') + '\n';
  }

  function download(name, type, text) {
    const url = URL.createObjectURL(new Blob([text], { type }));
    const a = el('a', { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  // The sortable, filterable trials table. Sorting and filtering survive a refresh of the data.
  function trialsTable(container, view, state) {
    const data = rows(view);
    const columns = ['trial', 'state'].concat(view.settings.map((s) => s.name), ['objective', 'meets_slos'],
      view.slos.map((s) => s.metric), ['note']);
    const unitOf = (c) => (c === 'objective' ? view.objective.unit
      : (view.slos.find((s) => s.metric === c) || {}).unit);
    const show = (c, v) => {
      if (v === null || v === undefined) return '';
      if (c === 'meets_slos') return v ? 'yes' : 'no';
      if (typeof v === 'number' && c !== 'trial') return human(v, unitOf(c));
      return String(v);
    };
    const needle = state.filter.trim().toLowerCase();
    let shown = data.filter((r) => (state.only === 'all') || (state.only === 'feasible' ? r.meets_slos === true
      : state.only === 'infeasible' ? r.meets_slos === false : r.state === state.only));
    if (needle) shown = shown.filter((r) => columns.some((c) => show(c, r[c]).toLowerCase().includes(needle)));
    shown.sort((a, b) => {
      const x = a[state.sort];
      const y = b[state.sort];
      const order = (x === y ? 0 : x === null || x === undefined ? 1 : y === null || y === undefined ? -1
        : typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y)));
      return state.descending ? -order : order;
    });
    const head = el('tr', {}, columns.map((c) => {
      const sorted = state.sort === c;
      return el('th', { scope: 'col', 'aria-sort': sorted ? (state.descending ? 'descending' : 'ascending') : 'none' }, [
        el('button', { type: 'button', class: 'sort', 'data-column': c, text: c + (sorted ? (state.descending ? ' ▼' : ' ▲') : ''),
          onclick: () => { state.descending = sorted ? !state.descending : false; state.sort = c; state.redraw(); } }),
      ]);
    }));
    const body = shown.map((r) => el('tr', { class: r.meets_slos === false ? 'miss' : '' },
      columns.map((c) => el('td', { text: show(c, r[c]) }))));
    // A redraw (new data, or a sort) keeps the keyboard focus on the column it was on.
    const focused = container.contains(document.activeElement) ? document.activeElement.dataset.column : undefined;
    container.replaceChildren(el('p', { class: 'muted', text: `${shown.length} of ${data.length} trials shown` }),
      el('table', { class: 'trials' }, [el('thead', {}, [head]), el('tbody', {}, body)]));
    if (focused !== undefined) container.querySelector(`button[data-column="${CSS.escape(focused)}"]`)?.focus();
  }

  function comparison(view) {
    const baseline = view.trials.find((t) => t.number === view.baseline);
    const best = view.trials.find((t) => t.number === view.best);
    if (!baseline || !best) return el('p', { class: 'muted', text: 'No trial meets every SLO yet: nothing to compare with the baseline.' });
    const change = (a, b) => (typeof a === 'number' && typeof b === 'number' && a !== 0 ? `${sig(((b - a) / Math.abs(a)) * 100)} %` : '');
    // Several objectives: each one's values, as the front's points carry them.
    const values = (t) => ((view.pareto && view.pareto.points.find((q) => q.trial === t.number)) || {}).values || [];
    const objectives = view.pareto
      ? view.pareto.objectives.map((o, i) => [o.expression, values(baseline)[i], values(best)[i], o.unit])
      : [[view.objective.text, baseline.objective, best.objective, view.objective.unit]];
    const lines = objectives
      .concat(view.settings.map((s) => [s.name, baseline.config[s.name], best.config[s.name], '']))
      .concat(view.slos.filter((s) => !objectives.some(([name]) => name === s.metric)).map((s) => [s.metric, (baseline.readings[s.metric] || {}).value,
        (best.readings[s.metric] || {}).value, s.unit]));
    const show = (v, unit) => (typeof v === 'number' ? human(v, unit) : cell(v));
    return el('table', { class: 'compare' }, [
      el('thead', {}, [el('tr', {}, ['', `baseline (trial ${baseline.number})`, `best (trial ${best.number})`, 'change']
        .map((h) => el('th', { scope: 'col', text: h })))]),
      el('tbody', {}, lines.map(([name, a, b, unit]) => el('tr', {}, [
        el('th', { scope: 'row', text: name }), el('td', { text: show(a, unit) }), el('td', { text: show(b, unit) }),
        el('td', { text: change(a, b) })]))),
    ]);
  }

  // Builds the whole study view in `root` and returns `update(view)` to redraw it with new data
  // (the application page polls; the report draws once).
  function mount(root, view) {
    const charts = new Map();
    const table = { sort: 'trial', descending: false, filter: '', only: 'all' };
    const summary = el('section', { class: 'summary' });
    const grid = el('section', { class: 'charts', 'aria-label': 'charts' });
    const tableBox = el('div', { class: 'table' });
    const filter = el('input', { type: 'search', placeholder: 'filter trials', 'aria-label': 'filter trials',
      oninput: (e) => { table.filter = e.target.value; table.redraw(); } });
    const only = el('select', { 'aria-label': 'which trials', onchange: (e) => { table.only = e.target.value; table.redraw(); } },
      ['all', 'complete', 'failed', 'running', 'feasible', 'infeasible'].map((v) => el('option', { value: v, text: v })));
    let current = view;
    const downloads = el('div', { class: 'downloads' }, [
      el('button', { type: 'button', text: 'Download CSV', onclick: () => download(`${current.study}-trials.csv`, 'text/csv', csv(current)) }),
      el('button', { type: 'button', text: 'Download JSON', onclick: () => download(`${current.study}-trials.json`, 'application/json', JSON.stringify(current.trials, null, 2)) }),
    ]);
    root.append(summary, el('h2', { text: 'Charts' }), grid, el('h2', { text: 'Trials' }),
      el('div', { class: 'controls' }, [filter, only, downloads]), tableBox);

    function chart(key, option, wide) {
      let entry = charts.get(key);
      if (!entry) {
        const box = el('figure', { class: wide ? 'chart wide' : 'chart', 'data-chart': key });
        grid.append(box);
        entry = { box, chart: global.echarts.init(box, null, { renderer: 'svg' }) };
        charts.set(key, entry);
      }
      entry.chart.setOption(option, { notMerge: true });
      entry.seen = true;
    }

    function update(next) {
      current = next;
      const c = next.counts;
      summary.replaceChildren(
        el('p', { text: (next.pareto
          ? `Pareto front of ${next.pareto.objectives.map((o) => `${o.maximize ? 'maximize' : 'minimize'} ${o.expression}`).join(', ')}`
          : `${next.objective.maximize ? 'Maximize' : 'Minimize'} ${next.objective.text}`)
          + (next.slos.length ? ` subject to ${next.slos.map((s) => s.text).join(', ')}` : '')
          + (next.pareto ? `; best by ${next.pareto.rule}` : '')
          + `. ${next.trials.length} trials: ${c.complete} complete (${c.breaches} missed an SLO), ${c.failed} failed, ${c.running} running, ${c.interrupted} interrupted.` }),
        next.breaches_text ? el('p', { class: next.breaches && next.breaches.count ? 'error' : 'muted',
          text: `SLO breaches while searching: ${next.breaches_text}.` }) : '',
        next.best_text ? el('p', { class: 'muted', text: `Reported ${next.best_text}.` }) : '',
        comparison(next));
      for (const entry of charts.values()) entry.seen = false;
      if (completeTrials(next).length) {
        if (next.pareto && next.pareto.objectives.length >= 2 && next.pareto.points.length) {
          chart('pareto', paretoOption(next), true);
        }
        chart('objective', objectiveOption(next), true);
        for (const s of next.settings) chart(`setting:${s.name}`, sliceOption(next, s));
        if (next.settings.length) chart('parallel', parallelOption(next), true);
        for (const slo of next.slos) chart(`slo:${slo.text}`, sloOption(next, slo));
        if (next.importance.length) chart('importance', importanceOption(next));
      }
      for (const [key, entry] of charts) {
        if (!entry.seen) { entry.chart.dispose(); entry.box.remove(); charts.delete(key); }
      }
      if (!charts.size) grid.replaceChildren(el('p', { class: 'muted', text: 'No complete trial yet.' }));
      else grid.querySelectorAll(':scope > p').forEach((p) => p.remove());
      table.redraw();
    }
    table.redraw = () => trialsTable(tableBox, current, table);
    window.addEventListener('resize', () => charts.forEach((e) => e.chart.resize()));
    update(view);
    return update;
  }

  global.ServoCharts = { mount, human, sig, scaleFor, csv, el };
})(window);
