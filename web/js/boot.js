// The boot modal: search offers (spinner, filters, the five cheapest as cards; only hosts that
// can run the configured image, and on request the cheapest excluded ones with the reason), rent one with
// an Idempotency-Key (a double click never rents twice), then follow the setup progress until
// the instance is ready, when the modal closes by itself.
import { api, ApiError } from './api.js';
import { h, $, fmtGB, fmtMbps, fmtRate, randomId, toast } from './util.js';
import { Modal } from './dialog.js';
import { gpu, STEPS, TRANSITIONAL, upsertInstance, refreshAll, refreshInstances, refreshStatus, pollSoon, stateWord } from './gpu.js';

const dlg = $('#boot-dialog');
let modal;
let session = '';          // a new one each time the modal opens fresh
let searchSeq = 0;
let booting = false;       // a boot request is in flight
let watching = null;       // instance id whose progress is shown
let watchTimer = null;
let chosenOffer = null;

export function initBoot() {
  modal = new Modal(dlg, { onClose: () => { stopWatch(); } });
  $('#boot-open').addEventListener('click', () => openPick());
  $('#boot-filters').addEventListener('submit', (e) => { e.preventDefault(); search(); });
  $('#boot-again').addEventListener('click', () => openPick(true));
  $('#f-ram').addEventListener('change', () => search());
  $('#f-explain').addEventListener('change', () => search());
  buildSteps();
  gpu.onChange(() => { if (watching) showInstance(gpu.instances.get(watching)); });
}

function buildSteps() {
  $('#boot-steps').replaceChildren(...STEPS.map((s, i) =>
    h('li', { dataset: { step: i } }, h('span.step-mark', { 'aria-hidden': 'true' }), h('span', null, s.label))));
}

function openPick(fresh = true) {
  if (fresh || !session) session = randomId();
  watching = null;
  chosenOffer = null;
  $('#boot-pick').hidden = false;
  $('#boot-progress').hidden = true;
  dlg.dataset.view = 'pick';
  $('#boot-title').textContent = 'Boot a GPU instance';
  const idle = gpu.config && gpu.config.IDLE_DESTROY_MINUTES;
  if (Number.isFinite(idle)) $('#idle-minutes').textContent = String(idle);
  modal.open($('#f-ram'));
  search();
}

async function search() {
  const seq = ++searchSeq;
  const status = $('#offers-status'), list = $('#offers');
  const ram = Number($('#f-ram').value) || 0;
  const price = Number($('#f-price').value);
  const explain = $('#f-explain').checked;
  const body = { limit: 5 };
  if (ram > 0) body.gpu_ram_min = ram;
  if (Number.isFinite(price) && price > 0) body.max_price = price;
  if (explain) body.explain = true;
  const byCost = $('#f-sort') && $('#f-sort').value === 'cost_per_audio_hour';
  if (byCost) body.sort = 'cost_per_audio_hour';
  status.replaceChildren(h('span.spinner', { 'aria-hidden': 'true' }), ' Searching offers…');
  status.className = 'offers-status';
  dlg.dataset.searching = '1';
  list.setAttribute('aria-busy', 'true');
  let offers, res;
  try {
    res = await api('POST', '/api/vast/search', { body });
    offers = res.offers || [];
  } catch (e) {
    if (seq !== searchSeq) return;
    delete dlg.dataset.searching;
    list.removeAttribute('aria-busy');
    list.replaceChildren();
    showExcluded(null);
    status.className = 'offers-status alert';
    status.textContent = searchErrorText(e);
    return;
  }
  if (seq !== searchSeq) return;
  delete dlg.dataset.searching;
  list.removeAttribute('aria-busy');
  showRequirements(res.requirements);
  showExcluded(explain ? res : null);
  // the server sorts (by $/h, or by cost per audio hour); the list keeps its order
  if (!byCost) offers.sort((a, b) => a.dph_total - b.dph_total);
  offers = offers.slice(0, 5);
  if (!offers.length) {
    status.className = 'offers-status';
    status.textContent = 'No offer matches. Allow a higher price or less GPU memory.';
    list.replaceChildren();
    return;
  }
  status.textContent = `${offers.length} cheapest offer${offers.length > 1 ? 's' : ''}, ${byCost ? 'lowest cost per audio hour' : 'lowest price'} first.`
    + ((res.bad_hosts || []).length ? ` ${res.bad_hosts.length} on hosts that failed recently left out.` : '');
  list.replaceChildren(...offers.map(offerCard));
}

const version = (v) => (Number.isInteger(v) ? v.toFixed(1) : String(v));
const shortImage = (img) => String(img || '').replace(/^[^/]+\.[^/]+\//, ''); // drop the registry host

// "Only hosts that can run whisper.cpp:main-cuda: CUDA ≥ 13.0, compute capability ≥ 7.5, disk ≥ 10 GB."
function showRequirements(req) {
  const el = $('#offers-req');
  if (!req || !req.image) { el.textContent = ''; return; }
  const parts = [];
  if (req.min_cuda > 0) parts.push(`CUDA ≥ ${version(req.min_cuda)}`);
  if (req.min_compute_cap > 0) parts.push(`compute capability ≥ ${(req.min_compute_cap / 100).toFixed(1)}`);
  if (req.min_disk_gb > 0) parts.push(`disk ≥ ${req.min_disk_gb} GB`);
  el.title = req.image;
  el.textContent = parts.length ? `Only hosts that can run ${shortImage(req.image)}: ${parts.join(', ')}.` : '';
}

// The cheapest offers the image's requirements leave out, each with why (explain only).
function showExcluded(res) {
  const area = $('#excluded-area'), ul = $('#offers-excluded');
  if (!res) { area.hidden = true; ul.replaceChildren(); return; }
  const ex = (res.excluded || []).slice().sort((a, b) => a.dph_total - b.dph_total).slice(0, 5);
  area.hidden = false;
  const img = shortImage(res.requirements && res.requirements.image);
  if (res.explain_error) {
    $('#excluded-title').textContent = `Excluded offers could not be listed: ${res.explain_error}`;
  } else {
    $('#excluded-title').textContent = ex.length
      ? `Excluded: ${ex.length === 1 ? 'this host cannot' : `the ${ex.length} cheapest hosts that cannot`} run ${img}`
      : `No offer is excluded for ${img} with these filters.`;
  }
  ul.replaceChildren(...ex.map(excludedCard));
}

function offerName(o) { return `${o.num_gpus > 1 ? `${o.num_gpus}× ` : ''}${o.gpu_name}`; }

function excludedCard(o) {
  return h('li.offer.excluded', { dataset: { offer: o.id } },
    h('div.offer-main', null,
      h('div.offer-title', null, h('strong', null, offerName(o)), o.geolocation ? h('span.hint', null, o.geolocation) : null),
      h('div.offer-price', null, fmtRate(o.dph_total))),
    h('dl.offer-facts', null,
      fact('VRAM', `${fmtGB(o.gpu_ram)}${o.num_gpus > 1 ? ' each' : ''}`),
      Number.isFinite(o.cuda_max_good) ? fact('CUDA', o.cuda_max_good > 0 ? version(o.cuda_max_good) : 'none') : null,
      Number.isFinite(o.compute_cap) ? fact('Compute', o.compute_cap > 0 ? (o.compute_cap / 100).toFixed(1) : '—') : null),
    h('p.offer-reason', null, (o.reasons && o.reasons.length ? o.reasons : [o.reason]).join('; ')));
}

function searchErrorText(e) {
  if (e instanceof ApiError) {
    if (e.kind === 'no_key') return 'No Vast.ai API key is configured: set VAST_API_KEY and restart gpuscribe.';
    if (e.kind === 'rate_limit' || e.status === 429) return 'Vast.ai is rate limiting requests. Wait a few seconds, then search again.';
    if (e.kind === 'auth' || e.status === 502) return `Vast.ai did not accept the request: ${e.message}. Check VAST_API_KEY and the network.`;
    if (e.status === 400) return `The filters were refused: ${e.message}`;
  }
  return `Search failed: ${e.message}. Try again.`;
}

function offerCard(o) {
  const name = offerName(o);
  const rel = Number.isFinite(o.reliability2) ? `${(o.reliability2 * 100).toFixed(1)}%` : '—';
  const btn = h('button.btn.primary.select', { type: 'button', dataset: { offer: o.id },
    'aria-label': `Select and boot ${name} at ${fmtRate(o.dph_total)}` }, 'Select & boot');
  btn.addEventListener('click', () => boot(o, btn));
  return h('li.offer', { dataset: { offer: o.id } },
    h('div.offer-main', null,
      h('div.offer-title', null, h('strong', null, name), o.geolocation ? h('span.hint', null, o.geolocation) : null),
      h('div.offer-price', null, fmtRate(o.dph_total))),
    h('dl.offer-facts', null,
      Number.isFinite(o.cost_per_audio_hour) ? h('div.offer-cpah', { title: `${o.speed_x}× realtime (${o.speed_source === 'measured' ? 'measured on your fleet' : 'estimated'}), boot time spread over the backlog` },
        h('dt', null, 'Per audio hour'), h('dd', null, `≈ $${o.cost_per_audio_hour.toFixed(o.cost_per_audio_hour < 0.1 ? 3 : 2)}`)) : null,
      fact('VRAM', `${fmtGB(o.gpu_ram)}${o.num_gpus > 1 ? ' each' : ''}`),
      Number.isFinite(o.speed_x) ? fact('Speed', `${o.speed_x}×${o.speed_source === 'measured' ? '' : ' (est.)'}`) : null,
      fact('Disk', fmtGB(o.disk_space)),
      fact('Bandwidth', `↓ ${fmtMbps(o.inet_down)} ↑ ${fmtMbps(o.inet_up)}`),
      fact('Reliability', rel),
      Number.isFinite(o.cuda_max_good) && o.cuda_max_good > 0 ? fact('CUDA', version(o.cuda_max_good)) : null),
    btn);
}
const fact = (k, v) => h('div', null, h('dt', null, k), h('dd', null, v));

async function boot(offer, btn) {
  if (booting) return;
  booting = true;
  const buttons = [...dlg.querySelectorAll('button.select')];
  for (const b of buttons) b.disabled = true;
  btn.textContent = 'Booting…';
  btn.setAttribute('aria-busy', 'true');
  // one key per modal session and offer: repeats of this click are the same rental
  const key = `ui-${session}-${offer.id}`;
  try {
    const r = await api('POST', '/api/vast/boot', { body: { offer_id: offer.id }, headers: { 'Idempotency-Key': key } });
    chosenOffer = offer;
    upsertInstance({ id: r.instance_id, ours: true, state: gpu.detailed ? 'creating' : undefined, stage: 'Creating the instance',
      percent: 10, gpu_name: offer.gpu_name, num_gpus: offer.num_gpus, dph_total: offer.dph_total, created_at: Date.now() / 1000 });
    showProgress(String(r.instance_id));
    refreshAll();
  } catch (e) {
    const status = $('#offers-status');
    status.className = 'offers-status alert';
    if (e instanceof ApiError && e.kind === 'image_mismatch') {
      // the host cannot run the image (nothing was rented): say why, keep the others usable
      status.textContent = e.message;
      btn.closest('li')?.classList.add('taken');
    } else if (e instanceof ApiError && e.status === 409 && !/Idempotency/i.test(e.message)) {
      status.replaceChildren('That offer was just taken by someone else. ',
        h('button.btn.small', { type: 'button', onclick: () => search() }, 'Search again'));
      btn.closest('li')?.classList.add('taken');
    } else if (e instanceof ApiError && e.status === 409) {
      session = randomId();
      status.textContent = `${e.message} Pick the offer again.`;
    } else {
      status.textContent = `Could not boot: ${e.message}`;
    }
    for (const b of buttons) b.disabled = !!b.closest('li.taken');
    btn.textContent = 'Select & boot';
    status.focus?.();
  } finally {
    booting = false;
    btn.removeAttribute('aria-busy');
  }
}

function showProgress(id) {
  watching = id;
  dlg.dataset.view = 'progress';
  dlg.dataset.instance = id;
  $('#boot-pick').hidden = true;
  $('#boot-progress').hidden = false;
  $('#boot-title').textContent = 'Setting up your GPU';
  $('#boot-again').hidden = true;
  $('#boot-error').hidden = true;
  const inst = gpu.instances.get(id);
  showInstance(inst);
  if (!modal.isOpen) modal.open($('#boot-bg'));
  else $('#boot-bg').focus();
  startWatch();
}

/** Opens the modal on the progress of a booting instance (from the GPU card). */
export function openProgress(id) {
  if (!modal.isOpen) modal.open();
  showProgress(id);
}

function startWatch() {
  stopWatch();
  const tick = async () => {
    if (!watching) return;
    if (gpu.detailed) {
      try { upsertInstance(await api('GET', `/api/vast/instances/${watching}`)); } catch { /* next tick */ }
      await refreshStatus();
    } else {
      await refreshStatus();
      await refreshInstances();
    }
    if (watching) watchTimer = setTimeout(tick, 1000);
  };
  watchTimer = setTimeout(tick, 500);
}
function stopWatch() { clearTimeout(watchTimer); watchTimer = null; }

function showInstance(inst) {
  if (!watching) return;
  const id = watching;
  if (!inst) {
    // the instance left the list: destroyed elsewhere, or failed and cleaned up
    if (dlg.dataset.view === 'progress' && dlg.dataset.state && dlg.dataset.state !== 'ready') {
      fail('The instance disappeared before it was ready (it was destroyed, or Vast.ai lost it). Search again for another offer.');
    }
    return;
  }
  const name = inst.gpu_name ? `${inst.num_gpus > 1 ? `${inst.num_gpus}× ` : ''}${inst.gpu_name}` : 'GPU';
  $('#boot-chosen').textContent = `${name} · ${fmtRate(inst.dph_total)} · instance #${id}`;
  dlg.dataset.state = inst.state;
  const pct = Math.max(0, Math.min(100, inst.percent || 0));
  $('#boot-bar').value = pct;
  $('#boot-percent').textContent = `${pct}%`;
  const stage = inst.stage || stateWord(inst.state);
  if ($('#boot-stage').textContent !== stage) $('#boot-stage').textContent = stage;
  const at = STEPS.findIndex((s) => s.states.includes(inst.state));
  for (const li of $('#boot-steps').children) {
    const n = Number(li.dataset.step);
    li.className = at < 0 ? '' : n < at || inst.state === 'ready' ? 'done' : n === at ? 'current' : '';
    if (n === at && inst.state !== 'ready') li.setAttribute('aria-current', 'step'); else li.removeAttribute('aria-current');
  }
  const log = Array.isArray(inst.log) ? inst.log : [];
  $('#boot-log').hidden = !log.length;
  if (log.length) {
    const pre = $('#boot-log pre');
    const text = log.map((l) => (typeof l === 'string' ? l : l.msg || l.message || JSON.stringify(l))).join('\n');
    if (pre.textContent !== text) pre.textContent = text;
  }
  if (inst.state === 'failed' || inst.error && !TRANSITIONAL.has(inst.state) && inst.state !== 'ready') {
    fail(failText(inst));
  } else if (['exited', 'offline', 'stopped'].includes(inst.state)) {
    fail(`The host stopped the instance (${inst.stage || inst.state}). Destroy it from the GPU panel and boot another offer.`);
  } else if (inst.state === 'ready') {
    const label = `GPU ready: ${name} (#${id})`;
    stopWatch();
    watching = null;
    setTimeout(() => {
      if (modal.isOpen && dlg.dataset.view === 'progress' && dlg.dataset.instance === id) modal.close();
      toast(label, 'ok');
      pollSoon();
    }, 600);
  }
}

function failText(inst) {
  const e = inst.error || 'Setup failed.';
  if (/no_such_ask|offer.*(gone|taken|available)/i.test(e)) return `${e} The offer was taken: search again for another.`;
  if (/ssh/i.test(e)) return `${e} The host did not accept SSH in time. Destroy it (if listed) and try another offer.`;
  return `${e} Destroy the instance from the GPU panel if it is still listed, then search again.`;
}

function fail(text) {
  stopWatch();
  const box = $('#boot-error');
  box.hidden = false;
  box.textContent = text;
  $('#boot-again').hidden = false;
  dlg.dataset.state = 'failed';
}

export function isBooting() { return [...gpu.instances.values()].some((i) => TRANSITIONAL.has(i.state)); }
