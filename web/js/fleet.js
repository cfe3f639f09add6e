// The fleet panel in the GPU card: every live instance with its slots, chunks in flight,
// speed, cost so far and idle countdown (GET /api/fleet), the autoscaling plan and what more
// GPUs would do, MAX_INSTANCES (PUT /api/fleet), and hosts left out after a failure.
import { api } from './api.js';
import { $, h, fmtDuration, fmtMoney, nowEpoch, toast } from './util.js';
import { stateWord } from './gpu.js';

let last = null;
let timer = null;

function idleText(inst) {
  const at = inst.destroy_at ?? inst.idle_destroy_at;
  if (!Number.isFinite(at)) return '—';
  const left = at - nowEpoch();
  return left > 0 ? `in ${fmtDuration(left)}` : 'now';
}

function row(inst) {
  const inflight = `${inst.inflight ?? 0}/${inst.slots || '—'}`;
  const speed = Number.isFinite(inst.speed_x) ? `${inst.speed_x}×${inst.speed_source === 'measured' ? '' : '*'}` : '—';
  const idle = idleText(inst);
  return h('tr', { dataset: { instance: inst.id } },
    h('th', { scope: 'row' }, inst.gpu_name || 'GPU',
      h('span.fleet-sub', null, `${stateWord(inst.state)}${idle !== '—' ? ` · destroy ${idle}` : ''}`)),
    h('td', { title: 'chunks in flight / slots' }, inflight),
    h('td', { title: inst.speed_source === 'measured' ? 'measured on this fleet' : 'estimated (not measured yet)' }, speed),
    h('td', null, Number.isFinite(inst.cost_usd) ? fmtMoney(inst.cost_usd) : '—'));
}

export function renderFleet(f = last) {
  const box = $('#fleet');
  if (!f) { box.hidden = true; return; }
  last = f;
  const plan = f.plan || {};
  const n = (f.instances || []).length;
  box.hidden = !(plan.enabled || n > 0 || (f.bad_hosts || []).length);
  $('#fleet-summary').textContent = `${n} of at most ${f.max_instances}`;
  const msg = plan.message || '';
  $('#fleet-plan').textContent = msg ? msg[0].toUpperCase() + msg.slice(1) : '';
  $('#fleet-plan').dataset.reason = plan.reason || '';
  const sug = $('#fleet-suggestion');
  sug.hidden = !plan.suggestion;
  sug.textContent = plan.suggestion ? `${plan.suggestion.text}.` : '';
  const table = $('#fleet-table');
  table.hidden = n === 0;
  table.tBodies[0].replaceChildren(...(f.instances || []).map(row));
  const input = $('#fleet-max');
  if (document.activeElement !== input) input.value = f.max_instances;
  const bad = $('#fleet-bad');
  bad.hidden = !(f.bad_hosts || []).length;
  bad.replaceChildren(...(f.bad_hosts || []).map((b) => h('li', null,
    `Host ${b.machine_id} left out until ${new Date(b.until * 1000).toLocaleString()}: ${b.reason}`)));
}

export async function refreshFleet() {
  try { renderFleet(await api('GET', '/api/fleet')); } catch { /* the GPU card says what is wrong */ }
}

/** A refresh within half a second, however many events ask for one meanwhile (jobs change
 * the slots in use). */
let soon = null;
export function refreshFleetSoon() {
  if (soon) return;
  soon = setTimeout(() => { soon = null; refreshFleet(); }, 500);
}

export function initFleet() {
  $('#fleet-max-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const n = Number($('#fleet-max').value);
    try {
      renderFleet(await api('PUT', '/api/fleet', { body: { max_instances: n } }));
      toast(n > 1 ? `Autoscaling: at most ${n} GPUs at once.` : 'Autoscaling is off (one GPU at most).', 'info', 3000);
    } catch (err) {
      toast(`Not changed: ${err.message}`, 'error');
    }
  });
  clearInterval(timer);
  timer = setInterval(refreshFleet, 5000);
  return refreshFleet();
}
