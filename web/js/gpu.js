// GPU status: the header badge, the GPU card (boot button, running instances with uptime,
// cost, idle countdown, Destroy). Live from instance.state events and gpu-status polling.
import { api, hasRoute, ApiError, authIsBlocked } from './api.js';
import { h, $, fmtDuration, fmtMoney, fmtRate, fmtClock, nowEpoch, toast } from './util.js';
import { confirmDialog } from './dialog.js';
import { costChart, bootTimeline } from './charts.js';

export const TRANSITIONAL = new Set(['requested', 'creating', 'loading', 'ssh_wait', 'installing',
  'starting_worker', 'destroying']);

export const STEPS = [
  { label: 'Create the instance', states: ['requested', 'creating'] },
  { label: 'Load the image', states: ['loading'] },
  { label: 'Connect over SSH', states: ['ssh_wait'] },
  { label: 'Install the engine', states: ['installing'] },
  { label: 'Start the worker', states: ['starting_worker'] },
  { label: 'Ready', states: ['ready'] },
];

const STATE_WORDS = {
  requested: 'Requested', creating: 'Creating', loading: 'Loading', ssh_wait: 'Waiting for SSH',
  installing: 'Installing', starting_worker: 'Starting worker', ready: 'Ready', failed: 'Failed',
  destroying: 'Destroying', destroyed: 'Destroyed', running: 'Running', exited: 'Stopped',
  offline: 'Offline', unknown: 'Unknown',
};
export const stateWord = (s) => STATE_WORDS[s] || (s ? s.replace(/_/g, ' ') : 'Unknown');

export const gpu = {
  config: null,        // GET /api/config
  status: null,        // GET /api/gpu-status
  instances: new Map(), // id -> normalised instance (ours only)
  others: 0,           // instances on the account gpuscribe did not start
  cost: null,          // GET /api/cost when the server has it
  listeners: new Set(),
  onChange(cb) { this.listeners.add(cb); },
  emit() { for (const cb of this.listeners) cb(this); },
  get hasKey() { return !!(this.config && this.config.VAST_API_KEY); },
  /** the server keeps a per-instance provisioning state (GET /api/vast/instances/{id}) */
  get detailed() { return hasRoute('GET', '/api/vast/instances/{id}'); },
};

/**
 * One shape for an instance, whichever server version answers: id, state, stage, percent,
 * error, log, gpu_name, num_gpus, dph_total, created_at, ready_at, tunnel, idle_destroy_at,
 * warning. Servers without the provisioning work only know Vast's actual_status; there the
 * stage is derived from it and from gpu-status.
 */
export function normalise(raw, prev = {}) {
  const i = { ...prev, ...raw };
  i.id = String(raw.id ?? prev.id);
  const legacy = !gpu.detailed;
  if (legacy && !['failed', 'destroying', 'destroyed'].includes(raw.state)) {
    const st = gpu.status;
    const live = st && st.available && st.type === 'vast' && String(st.vast_instance) === i.id;
    const a = raw.actual_status;
    if (live) Object.assign(i, { state: 'ready', stage: 'GPU ready', percent: 100 });
    else if (a === 'running') Object.assign(i, { state: 'ssh_wait', stage: 'Instance running; connecting', percent: Math.max(40, raw.percent || 0) });
    else if (a === 'loading') Object.assign(i, { state: 'loading', stage: raw.status_msg ? `Loading: ${raw.status_msg}` : 'Loading the image', percent: Math.max(25, raw.percent || 0) });
    else if (a === 'exited' || a === 'offline' || a === 'stopped') Object.assign(i, { state: a, stage: raw.status_msg || `Instance ${a}`, percent: raw.percent || 0 });
    else Object.assign(i, { state: 'creating', stage: raw.stage ? cap(raw.stage) : 'Creating the instance', percent: Math.max(10, raw.percent || 0) });
  }
  if (typeof i.percent !== 'number') i.percent = i.state === 'ready' ? 100 : 0;
  if (typeof i.stage === 'string' && i.stage) i.stage = cap(i.stage);
  return i;
}
const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);

const gone = (i) => i.state === 'destroyed' || (i.vanished && !TRANSITIONAL.has(i.state));

/** Merge an instance object (list row, detail or event) into the state. */
export function upsertInstance(raw) {
  if (!raw || raw.id === undefined || raw.id === null) return;
  const id = String(raw.id);
  const prev = gpu.instances.get(id);
  if (raw.ours === false) return;
  const inst = normalise(raw, prev);
  if (gone(inst)) gpu.instances.delete(id);
  else gpu.instances.set(id, inst);
}

let statusTimer = null;
export async function refreshStatus() {
  try {
    gpu.status = await api('GET', '/api/gpu-status');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return; // the token banner asks
    gpu.status = { available: false, type: 'none', unreachable: true, message: e.message };
  }
  gpu.emit();
}

export async function refreshInstances() {
  if (!gpu.hasKey) { gpu.instances.clear(); gpu.emit(); return; }
  try {
    const list = await api('GET', '/api/vast/instances');
    const seen = new Set();
    let others = 0;
    for (const row of list.instances || []) {
      if (row.ours === false) { others++; continue; }
      seen.add(String(row.id));
      upsertInstance(row);
    }
    for (const id of [...gpu.instances.keys()]) if (!seen.has(id)) gpu.instances.delete(id);
    gpu.others = others;
    gpu.listError = null;
    if (gpu.detailed) {
      await Promise.all([...gpu.instances.keys()].map(async (id) => {
        try { upsertInstance(await api('GET', `/api/vast/instances/${id}`)); } catch { /* the list row stays */ }
      }));
    }
  } catch (e) {
    gpu.listError = e.message;
  }
  if (hasRoute('GET', '/api/cost')) {
    try { gpu.cost = await api('GET', '/api/cost'); } catch { gpu.cost = null; }
  }
  if (hasRoute('GET', '/api/cost/history')) {
    try { gpu.history = await api('GET', `/api/cost/history?days=${HISTORY_DAYS}`); } catch { gpu.history = null; }
  }
  gpu.emit();
}
const HISTORY_DAYS = 14;

export async function refreshAll() {
  await refreshStatus();
  await refreshInstances();
  gpu.emit();
}

/** Poll every 30 s (the event stream does the rest); faster while something is changing. */
export function startPolling() {
  const tick = async () => {
    if (authIsBlocked()) { statusTimer = setTimeout(tick, 2000); return; }
    await refreshAll();
    const busy = [...gpu.instances.values()].some((i) => TRANSITIONAL.has(i.state)) ||
      (gpu.status && gpu.status.unreachable);
    statusTimer = setTimeout(tick, busy ? (gpu.eventsLive && gpu.detailed ? 10000 : 2000) : 30000);
  };
  clearTimeout(statusTimer);
  return tick();
}
export function pollSoon() {
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => startPolling(), 300);
}

// ---- cost

/** Cost so far of one instance: from /api/cost when it says, else dph_total x uptime. */
export function instanceCost(inst) {
  const c = gpu.cost;
  if (c && typeof c === 'object') {
    const rows = Array.isArray(c.instances) ? c.instances : [];
    const row = rows.find((r) => String(r.id ?? r.instance_id ?? r.vast_id) === inst.id);
    const v = row && (row.cost_usd ?? row.total_cost ?? row.cost ?? row.total_usd);
    if (Number.isFinite(v)) return v;
  }
  const since = inst.created_at;
  if (!Number.isFinite(since) || !Number.isFinite(inst.dph_total)) return NaN;
  return ((nowEpoch() - since) / 3600) * inst.dph_total;
}
export const uptime = (inst) => Number.isFinite(inst.created_at) ? nowEpoch() - inst.created_at : NaN;

// ---- rendering

function renderBadge() {
  const badge = $('#gpu-badge'), text = badge.querySelector('.badge-text');
  const s = gpu.status;
  const booting = [...gpu.instances.values()].find((i) => TRANSITIONAL.has(i.state) && i.state !== 'destroying');
  const reconnecting = [...gpu.instances.values()].find((i) => i.state === 'ready' && i.tunnel &&
    i.tunnel.state && !['up', 'connected', 'open', 'ok'].includes(i.tunnel.state));
  let cls = 'badge-bad', prefix = '', label = 'No GPU available';
  if (!s) { cls = 'badge-wait'; prefix = 'GPU: '; label = 'checking…'; }
  else if (s.unreachable) { cls = 'badge-bad'; label = 'Server unreachable'; }
  else if (s.available && s.type === 'vast') {
    prefix = 'GPU: ';
    if (reconnecting) { cls = 'badge-wait'; label = `reconnecting #${s.vast_instance}`; }
    else { cls = 'badge-ok'; label = `Vast.ai #${s.vast_instance}`; }
  } else if (s.available && s.type === 'local') { cls = 'badge-ok'; prefix = 'GPU: '; label = 'Local'; }
  else if (booting) { cls = 'badge-wait'; prefix = 'GPU: '; label = `booting #${booting.id} · ${booting.percent}%`; }
  badge.className = `badge ${cls}`;
  badge.dataset.state = cls.slice(6);
  if (text.textContent !== prefix + label) text.replaceChildren(prefix ? h('span.badge-gpu', null, prefix) : '', label);
}

function renderCard() {
  const s = gpu.status;
  const msg = $('#gpu-message');
  msg.textContent = !s ? 'Asking the server…' : s.unreachable ? `Cannot reach the server: ${s.message}`
    : s.available ? s.message : `No GPU connected. ${fallbackText()}`;
  const anyInstance = gpu.instances.size > 0;
  const showBoot = s && !s.unreachable && !s.available && !anyInstance;
  $('#boot-area').hidden = !showBoot;
  const btn = $('#boot-open'), hint = $('#boot-hint');
  if (gpu.config && !gpu.hasKey) {
    btn.disabled = true;
    hint.hidden = false;
    hint.replaceChildren('Renting a GPU needs a Vast.ai API key: set ', h('code', null, 'VAST_API_KEY'),
      ' in the .env file (or the environment) and restart gpuscribe.');
    btn.setAttribute('aria-describedby', 'boot-hint');
  } else {
    btn.disabled = false;
    hint.hidden = true;
    btn.removeAttribute('aria-describedby');
  }
  renderInstances();
  const note = $('#instances-note');
  const parts = [];
  if (gpu.listError) parts.push(`Instance list unavailable: ${gpu.listError}`);
  if (gpu.others) parts.push(`${gpu.others} other instance${gpu.others > 1 ? 's' : ''} on this Vast.ai account ${gpu.others > 1 ? 'were' : 'was'} not started by gpuscribe.`);
  note.hidden = !parts.length;
  note.textContent = parts.join(' ');
  renderSpending();
}

/** Spending per day and instance (GET /api/cost/history), once anything was ever rented. */
let spendingKey = '';
function renderSpending() {
  const box = $('#spending'), hist = gpu.history;
  const show = !!hist && (gpu.hasKey || hist.total > 0);
  box.hidden = !show;
  if (!show) return;
  const key = JSON.stringify([hist.per_day?.map((d) => [d.date, Object.entries(d.instances || {}).map(([k, v]) => [k, v.toFixed(4)])]), hist.instances?.map((i) => i.label)]);
  if (key === spendingKey) return;
  spendingKey = key;
  $('#spending-total').textContent = `${fmtMoney(hist.total || 0)} in ${hist.days} days`;
  $('#spending-chart').replaceChildren(costChart(hist));
}

/** where jobs go while no GPU is connected */
function fallbackText() {
  const c = gpu.config || {};
  if (c.GPU_ONLY) return 'Jobs wait in the queue until a GPU is ready (GPU_ONLY).';
  const coming = [...gpu.instances.values()].some((i) =>
    (TRANSITIONAL.has(i.state) && i.state !== 'destroying') || i.state === 'ready');
  if (coming) return 'Jobs wait in the queue for the GPU being set up.';
  if (c.OPENAI_API_KEY) return 'Jobs go to the OpenAI API meanwhile.';
  return 'Jobs run on this machine\'s CPU meanwhile.';
}

const instanceEls = new Map();
function renderInstances() {
  const box = $('#instances');
  for (const [id, el] of instanceEls) if (!gpu.instances.has(id)) { el.remove(); instanceEls.delete(id); }
  for (const inst of gpu.instances.values()) {
    let el = instanceEls.get(inst.id);
    if (!el) { el = buildInstance(inst); instanceEls.set(inst.id, el); box.append(el); }
    updateInstance(el, inst);
  }
}

function buildInstance(inst) {
  const el = h('article.instance', { dataset: { id: inst.id }, 'aria-label': `Instance ${inst.id}` },
    h('div.inst-head', null, h('strong.inst-gpu'), h('span.pill.inst-state')),
    h('dl.inst-facts', null,
      h('div', null, h('dt', null, 'Instance'), h('dd.inst-id')),
      h('div', null, h('dt', null, 'Rate'), h('dd.inst-rate')),
      h('div.inst-tunnel-row', null, h('dt', null, 'Tunnel'), h('dd.inst-tunnel'))),
    h('p.inst-run'),
    h('div.inst-progress', null, h('progress.inst-bar', { max: 100, value: 0, 'aria-label': 'Setup progress' }),
      h('p.inst-stage.hint')),
    h('div.inst-idle', { role: 'status' }),
    h('p.inst-error.alert', { role: 'alert' }),
    h('div.inst-boot'),
    h('div.inst-actions', null,
      h('button.btn.small.inst-show', { type: 'button', onclick: () => openBootProgress(inst.id) }, 'Show progress'),
      h('button.btn.small.inst-keep', { type: 'button', onclick: () => keepAlive(inst.id) }, 'Keep alive'),
      h('button.btn.small.danger-outline.inst-destroy', { type: 'button', onclick: () => destroy(inst.id) }, 'Destroy')));
  return el;
}

function setText(el, sel, text) {
  const e = el.querySelector(sel);
  if (e.textContent !== text) e.textContent = text;
  return e;
}

function updateInstance(el, inst) {
  const gpuName = inst.gpu_name ? `${inst.num_gpus > 1 ? `${inst.num_gpus}× ` : ''}${inst.gpu_name}` : 'GPU instance';
  setText(el, '.inst-gpu', gpuName);
  const pill = setText(el, '.inst-state', stateWord(inst.state));
  pill.className = `pill inst-state pill-${inst.state === 'ready' ? 'ok' : inst.state === 'failed' ? 'bad' : TRANSITIONAL.has(inst.state) ? 'wait' : 'muted'}`;
  el.dataset.state = inst.state || '';
  setText(el, '.inst-id', `#${inst.id}`);
  setText(el, '.inst-rate', fmtRate(inst.dph_total));
  const t = inst.tunnel;
  el.querySelector('.inst-tunnel-row').hidden = !t;
  if (t) setText(el, '.inst-tunnel', `${t.state || 'unknown'}${Number.isFinite(t.rtt_ms) ? ` · ${t.rtt_ms < 10 ? t.rtt_ms.toFixed(1) : Math.round(t.rtt_ms)} ms` : ''}`);
  const up = uptime(inst), cost = instanceCost(inst);
  setText(el, '.inst-run', Number.isFinite(up)
    ? `${inst.state === 'ready' ? 'Running' : 'Up'}: ${fmtDuration(up)} (${fmtMoney(cost)})` : '');
  const busy = TRANSITIONAL.has(inst.state) && inst.state !== 'destroying';
  el.querySelector('.inst-progress').hidden = !busy;
  if (busy) {
    el.querySelector('.inst-bar').value = inst.percent || 0;
    setText(el, '.inst-stage', `${inst.stage || stateWord(inst.state)} · ${inst.percent || 0}%`);
  }
  el.querySelector('.inst-show').hidden = !busy;
  const err = el.querySelector('.inst-error');
  err.hidden = !inst.error;
  if (inst.error) err.textContent = inst.error;
  // idle countdown (only when the server reports it)
  const idle = el.querySelector('.inst-idle');
  const at = Number(inst.idle_destroy_at);
  const canKeep = hasRoute('POST', '/api/vast/keepalive/{id}');
  if (Number.isFinite(at) && at > 0 && inst.state === 'ready') {
    const left = at - nowEpoch();
    idle.hidden = false;
    idle.className = `inst-idle${inst.warning ? ' warn' : ''}`;
    const text = left > 0 ? `Idle: destroyed in ${fmtClock(left)} unless a job arrives` : 'Idle: being destroyed';
    if (idle.textContent !== text) idle.textContent = text;
  } else idle.hidden = true;
  el.querySelector('.inst-keep').hidden = !(canKeep && Number.isFinite(at) && at > 0 && inst.warning);
  el.querySelector('.inst-destroy').disabled = inst.state === 'destroying';
  // the boot as a timeline of its stages (the server's "boot"), redrawn when it changes
  const bootBox = el.querySelector('.inst-boot');
  const b = inst.boot;
  const stages = b && Array.isArray(b.stages) ? b.stages : [];
  bootBox.hidden = !stages.length;
  const key = stages.length ? JSON.stringify([b.done, stages.map((st) => [st.name, Math.round(st.seconds)])]) : '';
  if (bootBox.dataset.key !== key) {
    bootBox.dataset.key = key;
    bootBox.replaceChildren(...(stages.length ? [bootTimeline(b)] : []));
  }
}

/** The idle-warning banner, when the server warns that an idle instance will be destroyed. */
function renderBanners() {
  const area = $('#banners');
  const warn = [...gpu.instances.values()].find((i) => i.warning && i.state === 'ready');
  let b = area.querySelector('.banner-idle');
  if (!warn) { b?.remove(); return; }
  if (!b) {
    b = h('div.banner.banner-warn.banner-idle', { role: 'alert' }, h('span.banner-text'),
      hasRoute('POST', '/api/vast/keepalive/{id}')
        ? h('button.btn.small', { type: 'button', onclick: () => keepAlive(b.dataset.id) }, 'Keep alive') : null);
    area.append(b);
  }
  b.dataset.id = warn.id;
  const left = Number(warn.idle_destroy_at) - nowEpoch();
  const text = typeof warn.warning === 'string' && warn.warning.length > 1 ? warn.warning
    : `GPU #${warn.id} is idle and will be destroyed${Number.isFinite(left) && left > 0 ? ` in ${fmtClock(left)}` : ' soon'}.`;
  setText(b, '.banner-text', text);
}

export function render() { renderBadge(); renderCard(); renderBanners(); }

// ---- actions

async function keepAlive(id) {
  try {
    const r = await api('POST', `/api/vast/keepalive/${id}`);
    if (r && typeof r === 'object' && r.id) upsertInstance(r);
    toast(`Instance #${id} kept alive.`);
    await refreshInstances();
  } catch (e) { toast(`Keep alive failed: ${e.message}`, 'error'); }
}

async function destroy(id) {
  const inst = gpu.instances.get(id);
  if (!inst) return;
  const up = uptime(inst), cost = instanceCost(inst);
  const lines = [
    `${inst.gpu_name || 'The instance'} #${id} will be shut down and deleted, with everything on its disk.`,
    Number.isFinite(up) ? `It has been up ${fmtDuration(up)} and has cost ${cost < 0.01 ? 'less than $0.01' : `about ${fmtMoney(cost)}`} so far${Number.isFinite(inst.dph_total) ? ` (${fmtRate(inst.dph_total)})` : ''}.` : null,
    'Jobs still running on it will be retried elsewhere.',
  ].filter(Boolean);
  const ok = await confirmDialog({ title: `Destroy instance #${id}?`, body: lines, confirmLabel: 'Destroy', danger: true });
  if (!ok) return;
  const el = instanceEls.get(id);
  el?.querySelector('.inst-destroy')?.setAttribute('disabled', '');
  try {
    const r = await api('POST', `/api/vast/destroy/${id}`);
    gpu.instances.delete(id);
    toast(r?.message || `Instance ${id} destroyed`, 'ok');
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) { gpu.instances.delete(id); toast(`Instance ${id} was already gone.`); }
    else toast(`Destroy failed: ${e.message}. Try again, or destroy it at console.vast.ai.`, 'error', 10000);
    el?.querySelector('.inst-destroy')?.removeAttribute('disabled');
  }
  await refreshAll();
}

let openProgressFn = () => {};
export function setOpenProgress(fn) { openProgressFn = fn; }
function openBootProgress(id) { openProgressFn(id); }

/** Uptime, cost and countdowns move every second without asking the server. */
export function startClock() {
  setInterval(() => {
    for (const inst of gpu.instances.values()) {
      const el = instanceEls.get(inst.id);
      if (el) updateInstance(el, inst);
    }
    renderBanners();
  }, 1000);
}
