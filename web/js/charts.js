// Pictures drawn as inline SVG by the page itself (no library, no external asset): the
// spending chart (GET /api/cost/history), the transcript's waveform (GET
// /api/jobs/{id}/peaks) with its segments laid on it, and an instance's boot timeline (the
// instance view's "boot").
import { h, fmtDuration, fmtClock } from './util.js';

const NS = 'http://www.w3.org/2000/svg';
/** s('rect.cls', {x: 1}, child...): an SVG element */
export function s(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split('.');
  const e = document.createElementNS(NS, tag);
  if (classes.length) e.setAttribute('class', classes.join(' '));
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}
const title = (text) => s('title', null, text);
/** $12, $3.40, $0.25, $0.0042 (small sums keep two significant digits) */
const money = (v) => {
  if (!(v > 0)) return '$0';
  if (v >= 100) return `$${Math.round(v)}`;
  if (v >= 0.01) return `$${v.toFixed(2)}`;
  return `$${v.toPrecision(2).replace(/0+$/, '').replace(/\.$/, '')}`;
};
const r3 = (v) => Math.round(v * 1000) / 1000;

// ---- spending per day, stacked by instance

/** A colour per instance: the palette's, in order of first spending. */
const PALETTE = ['var(--chart-1)', 'var(--chart-2)', 'var(--chart-3)', 'var(--chart-4)', 'var(--chart-5)', 'var(--chart-6)'];

/** The spending chart of a /api/cost/history reply: an <figure> with the SVG and a legend. */
export function costChart(hist) {
  const days = Array.isArray(hist?.per_day) ? hist.per_day : [];
  const insts = Array.isArray(hist?.instances) ? hist.instances : [];
  const colour = new Map(insts.map((i, k) => [i.id, PALETTE[k % PALETTE.length]]));
  const W = 320, H = 150, L = 60, R = 14, B = 18, T = 8; // R: room for the last day's label
  const max = Math.max(0, ...days.map((d) => d.total || 0));
  const top = niceCeil(max || 1);
  const bw = (W - L - R) / Math.max(1, days.length);
  const y = (v) => T + (H - T - B) * (1 - v / top);
  const grid = [0, 0.5, 1].map((f) => {
    const v = top * f;
    return s('g.cost-grid', null,
      s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      s('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, money(v)));
  });
  const bars = days.map((d, k) => {
    const x = L + k * bw + bw * 0.15, w = bw * 0.7;
    let acc = 0;
    const parts = Object.entries(d.instances || {}).filter(([, c]) => c > 0).map(([id, c]) => {
      const r = s('rect.cost-bar', {
        x: r3(x), width: r3(w), y: r3(y(acc + c)), height: r3(Math.max(0.5, y(acc) - y(acc + c))),
        fill: colour.get(id) || PALETTE[0], dataset: { date: d.date, instance: id, cost: c.toFixed(6) },
      }, title(`${d.date} · instance ${id}: ${money(c)}`));
      acc += c;
      return r;
    });
    const every = Math.ceil(days.length / 7);
    const label = (days.length - 1 - k) % every === 0
      ? s('text.cost-day', { x: r3(x + w / 2), y: H - 5, 'text-anchor': 'middle' }, d.date.slice(5)) : null;
    return s('g.cost-dayg', { dataset: { date: d.date, total: (d.total || 0).toFixed(6) } },
      s('rect.cost-hit', { x: r3(L + k * bw), width: r3(bw), y: T, height: H - T - B }, title(`${d.date}: ${money(d.total || 0)}`)),
      parts, label);
  });
  const svg = s('svg.chart.cost-chart', { viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-label': `Spending per day over the last ${days.length} days: ${money(hist?.total || 0)} in all` },
  grid, s('line.cost-axis', { x1: L, x2: W - R, y1: y(0), y2: y(0) }), bars);
  const legend = h('ul.chart-legend', { 'aria-label': 'Instances' },
    insts.map((i) => h('li', { dataset: { instance: i.id } },
      h('span.swatch', { style: `background:${colour.get(i.id)}`, 'aria-hidden': 'true' }),
      `#${i.id}${i.label ? ` (${i.label})` : ''} · ${money(i.total)}`)));
  return h('figure.spending-fig', null, svg,
    insts.length ? legend : h('p.hint.chart-empty', null, `Nothing spent in the last ${days.length} days.`));
}

function niceCeil(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// ---- the waveform with the transcript's segments on it

/**
 * peaks: a /api/jobs/{id}/peaks reply; segs: [{start, end}]; onSeek(t, i): a click at t s
 * (i: the segment clicked, or -1). The SVG's x axis is in seconds (viewBox 0..duration).
 * Returns {el, setTime(t), select(i)}.
 */
export function waveform(peaks, segs, onSeek) {
  const n = peaks.n || 0, dur = peaks.duration > 0 ? peaks.duration : 1, H = 100;
  const x = (i) => r3((i / Math.max(1, n)) * dur);
  const yv = (v) => r3(H / 2 - (v / 32768) * (H / 2 - 2));
  let d = '';
  if (n) {
    d = `M${x(0)},${yv(peaks.max[0])}`;
    for (let i = 1; i < n; i++) d += `L${x(i)},${yv(peaks.max[i])}`;
    d += `L${x(n)},${yv(peaks.max[n - 1])}L${x(n)},${yv(peaks.min[n - 1])}`;
    for (let i = n - 1; i >= 0; i--) d += `L${x(i)},${yv(peaks.min[i])}`;
    d += 'Z';
  }
  const segEls = segs.map((sg, i) => s('rect.wave-seg', {
    x: r3(Math.max(0, sg.start)), width: r3(Math.max(0.01, Math.min(dur, sg.end) - Math.max(0, sg.start))),
    y: 0, height: H, dataset: { i, start: sg.start, end: sg.end },
  }, title(`${fmtClock(sg.start)}–${fmtClock(sg.end)} ${sg.text || ''}`.trim())));
  const head = s('line.wave-head', { x1: 0, x2: 0, y1: 0, y2: H, 'vector-effect': 'non-scaling-stroke' });
  const svg = s('svg.chart.wave', { viewBox: `0 0 ${r3(dur)} ${H}`, preserveAspectRatio: 'none', role: 'img',
    'aria-label': `Waveform of ${fmtClock(dur)} of audio with ${segs.length} segment${segs.length === 1 ? '' : 's'}` },
  segEls, s('path.wave-peaks', { d }), s('line.wave-mid', { x1: 0, x2: r3(dur), y1: H / 2, y2: H / 2, 'vector-effect': 'non-scaling-stroke' }), head);
  svg.addEventListener('click', (e) => {
    const seg = e.target.closest?.('.wave-seg');
    const box = svg.getBoundingClientRect();
    const t = seg ? Number(seg.dataset.start) : ((e.clientX - box.left) / Math.max(1, box.width)) * dur;
    onSeek(Math.max(0, Math.min(dur, t)), seg ? Number(seg.dataset.i) : -1);
  });
  let sel = -1;
  return {
    el: svg,
    setTime(t) { const v = r3(Math.max(0, Math.min(dur, t))); head.setAttribute('x1', v); head.setAttribute('x2', v); },
    select(i) {
      if (sel >= 0 && segEls[sel]) segEls[sel].classList.remove('active');
      sel = i;
      if (i >= 0 && segEls[i]) segEls[i].classList.add('active');
    },
  };
}

// ---- an instance's boot as a timeline

const STAGE_WORDS = { rent: 'Vast.ai starts it', connect: 'SSH, upload, start', packages: 'Packages', build: 'Build', worker: 'Worker', models: 'Models' };

/** boot: the instance view's {total_s, done, stages: [{name, seconds, what}]}. */
export function bootTimeline(boot) {
  const stages = (boot?.stages || []).filter((st) => Number.isFinite(st.seconds));
  const total = Math.max(0.001, stages.reduce((a, st) => a + st.seconds, 0));
  let at = 0;
  const rects = stages.map((st, k) => {
    const r = s('rect.boot-stage', { x: r3(at), width: r3(Math.max(st.seconds, total / 400)), y: 0, height: 10,
      class: `boot-stage boot-${k % 6}`, dataset: { name: st.name, seconds: st.seconds.toFixed(2) } },
    title(`${STAGE_WORDS[st.name] || st.name}: ${fmtDuration(st.seconds)} (${st.what || ''})`));
    at += st.seconds;
    return r;
  });
  const svg = s('svg.chart.boot-chart', { viewBox: `0 0 ${r3(total)} 10`, preserveAspectRatio: 'none', role: 'img',
    'aria-label': `Boot timeline: ${fmtDuration(boot?.total_s ?? total)}${boot?.done ? '' : ' so far'}` }, rects);
  const list = h('ol.boot-stages', null, stages.map((st, k) => h('li', { dataset: { name: st.name } },
    h('span.swatch', { class: `swatch boot-${k % 6}`, 'aria-hidden': 'true' }),
    h('span.boot-name', null, STAGE_WORDS[st.name] || st.name), ' ',
    h('span.boot-secs', null, st.seconds < 10 ? `${st.seconds.toFixed(1)}s` : fmtDuration(st.seconds)))));
  return h('figure.boot-fig', { dataset: { total: (boot?.total_s ?? total).toFixed(2), done: boot?.done ? '1' : '0' } },
    h('figcaption.hint', null, `Boot: ${fmtDuration(boot?.total_s ?? total)}${boot?.done ? '' : ' so far'}`), svg, list);
}
