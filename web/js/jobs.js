// Transcribe: pick or drop files, upload each with progress (XMLHttpRequest), then follow its
// job; the job list (GET /api/jobs) kept live by job.* events.
import { api, authHeaders } from './api.js';
import { h, $, fmtBytes, fmtClock, fmtDuration, fmtWhen, toast } from './util.js';
import { confirmDialog } from './dialog.js';

const jobs = new Map();     // id -> job
let order = [];             // ids, newest first
let total = 0;
let pageSize = 20;
let openTranscript = () => {};
const uploadsById = new Map(); // job id -> upload row element

const STATE_WORDS = { preparing: 'Preparing', queued: 'Queued', running: 'Running', done: 'Done', failed: 'Failed', cancelled: 'Cancelled' };

export function initJobs({ onOpen }) {
  // opening a transcript (from the list too) retires its finished upload row
  openTranscript = (id) => {
    const row = uploadsById.get(id);
    if (row && row.dataset.state === 'done') { row.remove(); uploadsById.delete(id); }
    onOpen(id);
  };
  const input = $('#file-input'), zone = $('#dropzone');
  input.addEventListener('change', () => { addFiles(input.files); input.value = ''; });
  let depth = 0;
  zone.addEventListener('dragenter', (e) => { e.preventDefault(); depth++; zone.classList.add('over'); });
  zone.addEventListener('dragover', (e) => { e.preventDefault(); if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy'; });
  zone.addEventListener('dragleave', () => { if (--depth <= 0) { depth = 0; zone.classList.remove('over'); } });
  zone.addEventListener('drop', (e) => {
    e.preventDefault(); depth = 0; zone.classList.remove('over');
    if (e.dataTransfer?.files?.length) addFiles(e.dataTransfer.files);
  });
  // a file dropped outside the zone must not navigate away from the page
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());
  $('#jobs-more').addEventListener('click', () => { pageSize += 20; refreshJobs(); });
  $('#opt-model').addEventListener('focus', refreshModels);
  $('#opt-diarize').addEventListener('change', (e) => { $('#opt-speakers').disabled = !e.target.checked; });
  refreshModels();
}

// The models to offer (GET /v1/models: "whisper-1" is the default; the rest are what the
// ready GPU workers have, or the configured model, and the CPU engine)
async function refreshModels() {
  const sel = $('#opt-model');
  let names = [];
  try { names = ((await api('GET', '/v1/models')).data || []).map((m) => m.id).filter((n) => n !== 'whisper-1'); } catch { return; }
  const keep = sel.value;
  sel.replaceChildren(h('option', { value: '' }, 'Default'), ...names.map((n) => h('option', { value: n }, n)));
  if (names.includes(keep)) sel.value = keep;
}

// ---- uploads

function addFiles(fileList) {
  for (const f of fileList) upload(f);
}

function upload(file) {
  const bar = h('progress', { max: 100, value: 0, 'aria-label': `Upload of ${file.name}` });
  const status = h('span.up-status', null, 'Uploading…');
  const cancel = h('button.btn.small.ghost', { type: 'button', 'aria-label': `Cancel upload of ${file.name}` }, 'Cancel');
  const row = h('li.upload', { dataset: { state: 'uploading' } },
    h('div.up-head', null, h('span.up-name', { title: file.name }, file.name), h('span.hint', null, fmtBytes(file.size))),
    bar, h('div.up-foot', null, status, cancel));
  $('#uploads').prepend(row);

  const fd = new FormData();
  fd.append('file', file, file.name);
  const lang = $('#opt-language').value;
  if (lang) fd.append('language', lang);
  const model = $('#opt-model').value;
  if (model) fd.append('model', model);
  fd.append('response_format', $('#opt-format').value);
  if ($('#opt-words').checked) fd.append('word_timestamps', 'true');
  if ($('#opt-diarize').checked) {
    fd.append('diarize', 'true');
    const n = $('#opt-speakers').value;
    if (n) fd.append('num_speakers', n);
  }

  const xhr = new XMLHttpRequest();
  xhr.open('POST', '/api/jobs');
  for (const [k, v] of Object.entries(authHeaders({ Accept: 'application/json' }))) xhr.setRequestHeader(k, v);
  xhr.upload.addEventListener('progress', (e) => {
    if (!e.lengthComputable) return;
    const p = Math.round((e.loaded / e.total) * 100);
    bar.value = p;
    status.textContent = p < 100 ? `Uploading… ${p}% of ${fmtBytes(e.total)}` : 'Checking the audio…';
  });
  xhr.addEventListener('load', () => {
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
    if (xhr.status === 202 || xhr.status === 200) {
      row.dataset.state = 'queued';
      row.dataset.job = body.id;
      uploadsById.set(body.id, row);
      cancel.textContent = 'Cancel job';
      cancel.onclick = () => cancelJob(body.id);
      upsert(body); // also updates this row, from the newest state known
    } else {
      const why = body?.error || xhr.statusText || `HTTP ${xhr.status}`;
      row.dataset.state = 'error';
      bar.remove();
      status.className = 'up-status error';
      status.textContent = xhr.status === 413 ? `Too large: ${why}` : xhr.status === 400 ? `Not accepted: ${why}` : `Upload failed: ${why}`;
      dismissButton(cancel, row);
    }
  });
  xhr.addEventListener('error', () => {
    row.dataset.state = 'error';
    status.className = 'up-status error';
    status.textContent = 'Upload failed: the server could not be reached.';
    dismissButton(cancel, row);
  });
  xhr.addEventListener('abort', () => row.remove());
  cancel.addEventListener('click', () => { if (row.dataset.state === 'uploading') xhr.abort(); }, { once: true });
  xhr.send(fd);
}

function dismissButton(btn, row) {
  btn.textContent = 'Dismiss';
  btn.setAttribute('aria-label', 'Dismiss');
  btn.onclick = () => row.remove();
}

function updateUploadRow(job) {
  const row = uploadsById.get(job.id);
  if (!row) return;
  row.dataset.state = job.state;
  const bar = row.querySelector('progress');
  const status = row.querySelector('.up-status');
  const btn = row.querySelector('.up-foot .btn');
  if (job.state === 'preparing') {
    const p = Math.round((job.preparing_progress || 0) * 100);
    if (bar) bar.value = 0;
    status.textContent = `Preparing: decoding and cutting at pauses… ${p}%`;
  } else if (job.state === 'queued') {
    bar?.removeAttribute('value'); // indeterminate while waiting
    status.textContent = 'Queued: waiting for an engine…';
  } else if (job.state === 'running') {
    const p = Math.round((job.progress || 0) * 100);
    if (bar) bar.value = p;
    status.textContent = `Transcribing… ${p}%${job.backend ? ` on ${where(job)}` : ''}`;
  } else if (job.state === 'done') {
    bar?.remove();
    status.className = 'up-status ok';
    status.textContent = `Done in ${fmtDuration(processing(job))}${job.backend ? ` on ${where(job)}` : ''}.`;
    btn.textContent = 'View transcript';
    btn.className = 'btn small primary';
    btn.setAttribute('aria-label', `View transcript of ${job.filename || job.id}`);
    btn.onclick = () => { openTranscript(job.id); row.remove(); uploadsById.delete(job.id); };
  } else {
    bar?.remove();
    status.className = 'up-status error';
    status.textContent = job.state === 'cancelled' ? 'Cancelled.' : `Failed: ${job.error || 'unknown error'}`;
    dismissButton(btn, row);
    uploadsById.delete(job.id);
  }
}

// ---- jobs

function where(j) {
  const b = { local: 'this machine', remote: 'GPU', vast: 'Vast.ai GPU', openai: 'OpenAI API', api: 'OpenAI API' }[j.backend] || j.backend;
  return j.engine ? `${b} (${j.engine})` : b;
}
function processing(j) {
  if (Number.isFinite(j.processing_s)) return j.processing_s;
  if (Number.isFinite(j.started_at) && Number.isFinite(j.finished_at)) return j.finished_at - j.started_at;
  return NaN;
}

// a job's states only move forward; a reply or event that arrives late (the 202 of an upload
// whose job already ran, over another connection than the events) must not move it back
const STATE_RANK = { preparing: 0, queued: 1, running: 2, done: 3, failed: 3, cancelled: 3 };
const rank = (s) => STATE_RANK[s] ?? 0;

export function upsert(job) {
  if (!job || !job.id) return;
  const prev = jobs.get(job.id);
  const j = prev && rank(prev.state) > rank(job.state) ? { ...job, ...prev } : { ...prev, ...job };
  jobs.set(job.id, j);
  if (!prev) { order.unshift(job.id); total++; }
  updateUploadRow(j);
  renderJob(j);
}

export function onProgress(ev) {
  const j = jobs.get(ev.id);
  if (!j) return;
  j.progress = ev.progress;
  if (j.state === 'queued') j.state = 'running';
  updateUploadRow(j);
  renderJob(j);
}

// job.preparing: {id, progress} of the decode before the job is queued
export function onPreparing(ev) {
  const j = jobs.get(ev.id);
  if (!j || j.state !== 'preparing') return;
  j.preparing_progress = ev.progress;
  updateUploadRow(j);
  renderJob(j);
}

export function onDeleted(ev) {
  if (!jobs.has(ev.id)) return;
  jobs.delete(ev.id);
  order = order.filter((x) => x !== ev.id);
  total = Math.max(0, total - 1);
  rowEls.get(ev.id)?.remove();
  rowEls.delete(ev.id);
  renderMeta();
}

export async function refreshJobs() {
  try {
    const r = await api('GET', `/api/jobs?limit=${pageSize}`);
    total = r.total ?? r.jobs.length;
    const ids = new Set();
    for (const j of r.jobs) { jobs.set(j.id, { ...jobs.get(j.id), ...j }); ids.add(j.id); updateUploadRow(jobs.get(j.id)); }
    // keep jobs created meanwhile (events) that the page did not return
    order = [...r.jobs.map((j) => j.id), ...order.filter((id) => !ids.has(id) && jobs.has(id))];
    for (const id of [...rowEls.keys()]) if (!jobs.has(id) || !order.includes(id)) { rowEls.get(id).remove(); rowEls.delete(id); }
    renderAll();
  } catch (e) {
    toast(`Could not load jobs: ${e.message}`, 'error');
  }
}

/** Poll active jobs when the event stream is down. */
const isActive = (j) => j.state === 'preparing' || j.state === 'queued' || j.state === 'running';
export function activeJobs() { return [...jobs.values()].filter(isActive); }

const rowEls = new Map();
function renderAll() {
  const body = $('#jobs-body');
  order.forEach((id, i) => {
    const j = jobs.get(id);
    if (!j) return;
    renderJob(j);
    const el = rowEls.get(id);
    if (body.children[i] !== el) body.insertBefore(el, body.children[i] || null);
  });
  renderMeta();
}

function renderMeta() {
  const n = order.length;
  $('#jobs-empty').hidden = n > 0;
  $('#jobs-table').hidden = n === 0;
  $('#jobs-total').textContent = total ? `${total} job${total > 1 ? 's' : ''}` : '';
  $('#jobs-more').hidden = n >= total;
}

function renderJob(j) {
  let tr = rowEls.get(j.id);
  if (!tr) {
    tr = h('tr', { dataset: { id: j.id } },
      h('td.c-file', { 'data-label': 'File' }, h('span.file-name'), h('span.file-when.hint')),
      h('td.c-state', { 'data-label': 'State' }, h('span.pill.job-state'), h('progress.job-bar', { max: 100, 'aria-label': 'Progress' })),
      h('td.c-len', { 'data-label': 'Length' }),
      h('td.c-where', { 'data-label': 'Ran on' }),
      h('td.c-took', { 'data-label': 'Took' }),
      h('td.c-act', null,
        h('button.btn.small.view', { type: 'button', onclick: () => openTranscript(j.id) }, 'View'),
        h('button.btn.small.ghost.del', { type: 'button', onclick: () => removeJob(j.id) }, 'Delete')));
    rowEls.set(j.id, tr);
    const body = $('#jobs-body');
    const idx = order.indexOf(j.id);
    body.insertBefore(tr, idx >= 0 ? body.children[idx] || null : null);
    renderMeta();
  }
  tr.dataset.state = j.state;
  tr.querySelector('.file-name').textContent = j.filename || j.id;
  tr.querySelector('.file-name').title = j.filename || j.id;
  tr.querySelector('.file-when').textContent = fmtWhen(j.created_at);
  const pill = tr.querySelector('.job-state');
  const p = Math.round((j.progress || 0) * 100);
  pill.textContent = j.state === 'running' ? `Running ${p}%${j.chunks_total > 1 ? ` (${j.chunks_done}/${j.chunks_total} chunks)` : ''}`
    : STATE_WORDS[j.state] || j.state;
  pill.className = `pill job-state pill-${{ done: 'ok', failed: 'bad', running: 'wait', queued: 'muted', cancelled: 'muted' }[j.state] || 'muted'}`;
  if (j.state === 'failed' && j.error) pill.title = j.error; else pill.removeAttribute('title');
  const bar = tr.querySelector('.job-bar');
  bar.hidden = j.state !== 'running';
  bar.value = p;
  tr.querySelector('.c-len').textContent = Number.isFinite(j.audio_duration) ? fmtClock(j.audio_duration) : '—';
  tr.querySelector('.c-where').textContent = j.backend ? where(j) : '—';
  tr.querySelector('.c-took').textContent = j.state === 'done' ? fmtDuration(processing(j)) : '—';
  const view = tr.querySelector('.view');
  view.disabled = j.state !== 'done';
  view.setAttribute('aria-label', `View transcript of ${j.filename || j.id}`);
  const del = tr.querySelector('.del');
  const active = isActive(j);
  del.textContent = active ? 'Cancel' : 'Delete';
  del.setAttribute('aria-label', `${active ? 'Cancel' : 'Delete'} ${j.filename || j.id}`);
}

async function cancelJob(id) {
  try { upsert(await api('DELETE', `/api/jobs/${id}`)); } catch (e) { toast(`Cancel failed: ${e.message}`, 'error'); }
}

async function removeJob(id) {
  const j = jobs.get(id);
  if (!j) return;
  if (isActive(j)) return cancelJob(id);
  const ok = await confirmDialog({ title: 'Delete this job?', body: `${j.filename || id}: its audio and transcript are deleted from this server.`, confirmLabel: 'Delete', danger: true });
  if (!ok) return;
  try {
    await api('DELETE', `/api/jobs/${id}`);
    onDeleted({ id });
    document.dispatchEvent(new CustomEvent('job-deleted', { detail: id }));
  } catch (e) { toast(`Delete failed: ${e.message}`, 'error'); }
}

export function getJob(id) { return jobs.get(id); }
