// gpuscribe web UI: entry point. Wires the GPU status (badge, boot, instances), uploads and
// jobs, and the transcript view to the server's REST API and its event stream.
import { api, loadRoutes, openEvents, onAuthNeeded, setToken, getToken, authIsBlocked } from './js/api.js';
import { $, h, toast } from './js/util.js';
import { gpu, render as renderGpu, refreshAll, startPolling, startClock, upsertInstance, pollSoon, setOpenProgress, refreshStatus } from './js/gpu.js';
import { initBoot, openProgress } from './js/boot.js';
import { initJobs, refreshJobs, upsert as upsertJob, onProgress, onPreparing, onDeleted, activeJobs } from './js/jobs.js';
import { initTranscript, open as openTranscript, close as closeTranscript, currentJob } from './js/transcript.js';
import { initFleet, refreshFleet, refreshFleetSoon } from './js/fleet.js';

async function loadConfig() {
  try { gpu.config = await api('GET', '/api/config'); } catch { gpu.config = gpu.config || null; }
}

function route() {
  const m = location.hash.match(/^#\/jobs\/([0-9a-f]{1,32})$/i);
  if (m && m[1] !== currentJob()) openTranscript(m[1]);
  else if (!m && currentJob()) closeTranscript(false);
}

function showTokenBanner() {
  if ($('#banners .banner-token')) return;
  const input = h('input', { id: 'token-input', type: 'password', autocomplete: 'current-password', placeholder: 'API token', 'aria-label': 'API token' });
  const form = h('form.banner.banner-warn.banner-token', { role: 'alert' },
    h('span.banner-text', null, getToken() ? 'The API token was refused. Enter the right one:' : 'This server needs its API token (API_TOKEN):'),
    h('input', { type: 'text', name: 'username', autocomplete: 'username', value: 'gpuscribe', hidden: true, 'aria-hidden': 'true', tabindex: '-1' }),
    input, h('button.btn.small.primary', { type: 'submit' }, 'Use token'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    form.remove();
    boot();
  });
  $('#banners').append(form);
  input.focus();
}

function connectionBanner(live) {
  gpu.eventsLive = live;
  let b = $('#banners .banner-conn');
  if (live) { b?.remove(); return; }
  if (!b) {
    b = h('div.banner.banner-quiet.banner-conn', { role: 'status' }, 'Live updates paused: reconnecting to the server…');
    $('#banners').append(b);
  }
}

let eventsHandle = null;
let fallbackTimer = null;
let started = false;
async function boot() {
  await loadRoutes();
  await loadConfig(); // one request first: with API_TOKEN set and no token, nothing else is asked
  if (authIsBlocked()) { document.body.dataset.ready = 'token'; return; }
  renderGpu();
  if (!started) {
    started = true;
    gpu.onChange(renderGpu);
    initBoot();
    setOpenProgress(openProgress);
    initJobs({ onOpen: (id) => { if (location.hash === `#/jobs/${id}`) openTranscript(id); else location.hash = `#/jobs/${id}`; } });
    initTranscript();
    initFleet();
    $('#gpu-refresh').addEventListener('click', async () => { await refreshAll(); toast('GPU status refreshed.', 'info', 2000); });
    window.addEventListener('hashchange', route);
    startClock();
  }
  eventsHandle?.close();
  let everOpen = false;
  eventsHandle = openEvents({
    'job.created': upsertJob,
    'job.state': (o) => { upsertJob(o); refreshFleetSoon(); }, // slots in use change with jobs
    'job.progress': onProgress,
    'job.preparing': onPreparing,
    'job.deleted': onDeleted,
    'instance.state': (o) => { upsertInstance(o); refreshStatus(); gpu.emit(); refreshFleet(); },
    'fleet.scale': () => refreshFleet(),
    'gpu.status': () => pollSoon(),
  }, (state) => {
    if (state === 'open') {
      if (everOpen) { refreshJobs(); pollSoon(); } // catch up on what was missed
      everOpen = true;
      connectionBanner(true);
    } else if (everOpen) connectionBanner(false);
  });
  // without live events, active jobs are polled
  clearInterval(fallbackTimer);
  fallbackTimer = setInterval(() => { if (!gpu.eventsLive && !authIsBlocked() && activeJobs().length) refreshJobs(); }, 3000);
  await Promise.all([startPolling(), refreshJobs()]);
  route();
  document.body.dataset.ready = '1';
}

onAuthNeeded(showTokenBanner);
boot();
