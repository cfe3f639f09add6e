// Transcript view: segments with timestamps (verbose_json), click to play that part of the
// audio, search with highlights, downloads (TXT, SRT, VTT, JSON) and copy to clipboard.
// Diarized jobs: a colour per speaker, names editable in place (PATCH .../speakers), a
// filter by speaker and each speaker's talk time.
import { api, getToken, fetchBlob } from './api.js';
import { h, $, fmtClock, fmtDuration, toast } from './util.js';
import { getJob } from './jobs.js';
import { waveform } from './charts.js';

let current = null;     // job id shown
let segments = [];      // [{start, end, text, el}]
let fullText = '';
let matches = [];       // <mark> elements
let matchAt = -1;
let audioUrl = null;    // object URL when a token is in use
let stopAt = null;      // pause at the end of a clicked segment
let wave = null;        // the waveform (charts.js), once its peaks and the segments are in

export function initTranscript() {
  $('#tr-close').addEventListener('click', () => close(true));
  const search = $('#tr-search');
  let t;
  search.addEventListener('input', () => { clearTimeout(t); t = setTimeout(() => highlight(search.value), 120); });
  search.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { e.preventDefault(); step(e.shiftKey ? -1 : 1); }
    if (e.key === 'Escape' && search.value) { e.preventDefault(); search.value = ''; highlight(''); }
  });
  $('#tr-next').addEventListener('click', () => step(1));
  $('#tr-prev').addEventListener('click', () => step(-1));
  $('#tr-copy').addEventListener('click', copy);
  const audio = $('#tr-audio');
  audio.addEventListener('timeupdate', () => {
    const now = audio.currentTime;
    if (stopAt !== null && now >= stopAt) { audio.pause(); stopAt = null; }
    markPlaying(now);
    wave?.setTime(now);
  });
  audio.addEventListener('seeking', () => { if (stopAt !== null && audio.currentTime > stopAt) stopAt = null; });
  document.addEventListener('job-deleted', (e) => { if (e.detail === current) close(true); });
  for (const a of document.querySelectorAll('#transcript a[download]')) {
    a.addEventListener('click', (e) => { if (getToken()) { e.preventDefault(); downloadWithToken(a); } });
  }
}

export async function open(id, { focus = true } = {}) {
  const sec = $('#transcript');
  current = id;
  sec.hidden = false;
  sec.dataset.job = id;
  sec.setAttribute('aria-busy', 'true');
  const job = getJob(id) || await api('GET', `/api/jobs/${id}`).catch(() => null);
  $('#tr-title').textContent = job?.filename || 'Transcript';
  $('#tr-meta').textContent = 'Loading…';
  $('#tr-segments').replaceChildren();
  wave = null;
  $('#tr-wave').replaceChildren();
  $('#tr-wave').hidden = true;
  // the waveform's peaks come from the server (computed once, cached beside the audio)
  const peaks = api('GET', `/api/jobs/${id}/peaks?n=800`).catch(() => null);
  $('#tr-search').value = '';
  $('#tr-count').textContent = '';
  for (const [f, ext] of [['txt', 'txt'], ['srt', 'srt'], ['vtt', 'vtt'], ['json', 'verbose_json']]) {
    const a = $(`#dl-${f}`);
    a.href = `/api/jobs/${id}/transcript?format=${ext}&download=1`;
    a.setAttribute('download', `${baseName(job?.filename) || id}.${f}`);
  }
  if (focus) {
    sec.scrollIntoView({ block: 'start', behavior: matchMedia('(prefers-reduced-motion: reduce)').matches ? 'auto' : 'smooth' });
    $('#tr-title').focus({ preventScroll: true });
  }
  setAudio(id);
  try {
    const t = await api('GET', `/api/jobs/${id}/transcript?format=verbose_json`);
    if (current !== id) return;
    render(t, job);
    const p = await peaks;
    if (current === id && p && p.n > 0) renderWave(p);
  } catch (e) {
    if (current !== id) return;
    $('#tr-meta').textContent = `The transcript cannot be shown: ${e.message}`;
  } finally {
    sec.removeAttribute('aria-busy');
  }
  if (location.hash !== `#/jobs/${id}`) history.replaceState(null, '', `#/jobs/${id}`);
}

export function close(clearHash) {
  current = null;
  wave = null;
  const sec = $('#transcript');
  sec.hidden = true;
  delete sec.dataset.job;
  const audio = $('#tr-audio');
  audio.pause();
  audio.removeAttribute('src');
  audio.load();
  if (audioUrl) { URL.revokeObjectURL(audioUrl); audioUrl = null; }
  if (clearHash && location.hash.startsWith('#/jobs/')) history.replaceState(null, '', location.pathname + location.search);
}

export const currentJob = () => current;

function baseName(n) { return n ? n.replace(/\.[^.]+$/, '') : ''; }

async function setAudio(id) {
  const audio = $('#tr-audio');
  if (audioUrl) { URL.revokeObjectURL(audioUrl); audioUrl = null; }
  stopAt = null;
  if (!getToken()) { audio.src = `/api/jobs/${id}/audio`; return; }
  try {
    const b = await fetchBlob(`/api/jobs/${id}/audio`);
    if (current !== id) return;
    audioUrl = URL.createObjectURL(b);
    audio.src = audioUrl;
  } catch { audio.removeAttribute('src'); }
}

function render(t, job) {
  const list = $('#tr-segments');
  const words = Array.isArray(t.words) ? t.words : [];
  segments = (t.segments || []).map((s) => ({ start: s.start, end: s.end, text: (s.text || '').trim(), speaker: s.speaker_id || null }));
  if (!segments.length && t.text) segments = [{ start: 0, end: t.duration || 0, text: t.text.trim() }];
  fullText = segments.map((s) => s.text).join('\n');
  let w = 0;
  list.replaceChildren(...segments.map((s, i) => {
    // words that fall in this segment become clickable too
    const ws = [];
    while (w < words.length && words[w].start < s.end + 0.005) { if (words[w].start >= s.start - 0.005) ws.push(words[w]); w++; }
    const textEl = h('p.seg-text');
    if (ws.length && ws.map((x) => x.word.trim()).join(' ').length > 0) {
      ws.forEach((x, k) => {
        if (k) textEl.append(' ');
        textEl.append(h('span.word', { dataset: { start: x.start, end: x.end } }, x.word.trim()));
      });
    } else textEl.textContent = s.text;
    const ts = h('button.seg-time', { type: 'button', 'aria-label': `Play from ${fmtClock(s.start)}` }, fmtClock(s.start));
    const chip = s.speaker ? h('span.seg-speaker', { style: `--spk: ${speakerColour(s.speaker)}`,
      title: speakerName(t, s.speaker) }, speakerName(t, s.speaker)) : null;
    const li = h('li.segment', { dataset: { i, start: s.start, end: s.end, speaker: s.speaker || '' } },
      chip ? h('div.seg-lead', null, ts, chip) : ts, textEl);
    if (s.speaker) li.style.setProperty('--spk', speakerColour(s.speaker));
    s.el = li;
    s.plain = textEl.textContent;
    return li;
  }));
  list.onclick = (e) => {
    const word = e.target.closest('.word');
    const seg = e.target.closest('.segment');
    if (!seg) return;
    if (window.getSelection()?.toString()) return; // selecting text, not seeking
    const s = segments[Number(seg.dataset.i)];
    selectSegment(Number(seg.dataset.i), false);
    play(word ? Number(word.dataset.start) : s.start, s.end);
  };
  const lang = t.language ? `${t.language[0].toUpperCase()}${t.language.slice(1)}` : null;
  const parts = [
    Number.isFinite(t.duration) ? fmtClock(t.duration) : null,
    `${segments.length} segment${segments.length === 1 ? '' : 's'}`,
    lang,
    job?.engine ? `engine ${job.engine}${job.backend ? ` on ${job.backend}` : ''}` : null,
    job && Number.isFinite(job.processing_s) ? `took ${fmtDuration(job.processing_s)}` : null,
  ].filter(Boolean);
  $('#tr-meta').textContent = parts.join(' · ');
  renderSpeakers(t, job);
  if (!segments.length) list.replaceChildren(h('li.empty', null, 'No speech was found in this audio.'));
}

// ---- speakers: colours, in-place renames, the filter, talk time
const hidden = new Set(); // speaker ids filtered out

function speakerColour(id) { return `hsl(${(id - 1) * 137.5 % 360} 65% 42%)`; }
function speakerName(t, id) { return (t.speakers || []).find((x) => x.id === id)?.name || `Speaker ${id}`; }

function applyFilter() {
  for (const s of segments) if (s.el) s.el.hidden = Boolean(s.speaker && hidden.has(s.speaker));
}

function renderSpeakers(t, job) {
  let bar = $('#tr-speakers');
  if (!bar) {
    bar = h('div.speakers', { role: 'group', 'aria-label': 'Speakers' });
    bar.id = 'tr-speakers';
    $('#tr-segments').before(bar);
  }
  hidden.clear();
  const sp = Array.isArray(t.speakers) ? t.speakers : [];
  bar.hidden = sp.length === 0;
  if (!sp.length) { bar.replaceChildren(); return; }
  const total = sp.reduce((a, x) => a + (x.talk_time || 0), 0) || 1;
  bar.replaceChildren(...sp.map((x) => {
    const show = h('input', { type: 'checkbox', checked: true, 'aria-label': `Show ${x.name}` });
    show.addEventListener('change', () => {
      if (show.checked) hidden.delete(x.id); else hidden.add(x.id);
      applyFilter();
    });
    const name = h('span.spk-name', { contenteditable: 'plaintext-only', spellcheck: 'false',
      title: 'Click to rename', 'aria-label': `Name of speaker ${x.id}` }, x.name);
    const commit = async () => {
      const v = name.textContent.trim();
      if (v === x.name) return;
      try {
        await api('PATCH', `/api/jobs/${job?.id || current}/speakers`, { body: { [x.id]: v || null } });
        const id = current;
        const nt = await api('GET', `/api/jobs/${id}/transcript?format=verbose_json`);
        if (current === id) render(nt, job);
      } catch (e) {
        name.textContent = x.name;
        toast(`Cannot rename the speaker: ${e.data?.error || e.message}`);
      }
    };
    name.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') { e.preventDefault(); name.blur(); }
      if (e.key === 'Escape') { name.textContent = x.name; name.blur(); }
    });
    name.addEventListener('blur', commit);
    const pct = Math.round(100 * (x.talk_time || 0) / total);
    return h('label.speaker', { style: `--spk: ${speakerColour(x.id)}` }, show,
      h('span.spk-swatch', { 'aria-hidden': 'true' }), name,
      h('span.spk-time', null, `${fmtDuration(x.talk_time || 0)} (${pct}%)`));
  }));
}

/** The waveform, its segments laid on it: a click on a segment plays it and highlights it in
 * the list; elsewhere it plays from there. */
function renderWave(p) {
  const box = $('#tr-wave');
  wave = waveform(p, segments, (t, i) => {
    if (i >= 0) { selectSegment(i, true); play(segments[i].start, segments[i].end); } else play(t, null);
  });
  box.replaceChildren(wave.el);
  box.hidden = false;
  wave.setTime($('#tr-audio').currentTime || 0);
}

/** Highlight segment i in the list and on the waveform (scrolled into view when asked). */
function selectSegment(i, scroll) {
  for (const el of document.querySelectorAll('#tr-segments .segment.selected')) el.classList.remove('selected');
  const s = segments[i];
  if (s?.el) {
    s.el.classList.add('selected');
    if (scroll) s.el.scrollIntoView({ block: 'nearest' });
  }
  wave?.select(i);
}

async function play(from, to) {
  const audio = $('#tr-audio');
  if (!audio.src) return;
  stopAt = Number.isFinite(to) ? to : null;
  try {
    if (audio.readyState < 1) await new Promise((res) => audio.addEventListener('loadedmetadata', res, { once: true }));
    if (from > 0 && !seekable(audio, from)) await loadWhole(audio);
    audio.currentTime = from;
    await audio.play();
  } catch (e) {
    if (e.name !== 'AbortError') toast(`The audio cannot be played here: ${e.message}`, 'error');
  }
}

function seekable(audio, t) {
  const r = audio.seekable;
  for (let i = 0; i < r.length; i++) if (t >= r.start(i) && t <= r.end(i)) return true;
  return false;
}

/** The server may not answer Range requests; then the browser can only seek in what it
 * holds, so the whole file is fetched once and played from memory. */
async function loadWhole(audio) {
  const id = current;
  const job = getJob(id);
  if (audioUrl || (job && job.size_bytes > 512e6)) return;
  const b = await fetchBlob(`/api/jobs/${id}/audio`);
  if (current !== id) return;
  audioUrl = URL.createObjectURL(b);
  audio.src = audioUrl;
  await new Promise((res) => audio.addEventListener('loadedmetadata', res, { once: true }));
}

function markPlaying(now) {
  for (const s of segments) {
    const on = now >= s.start && now < s.end;
    if (s.el && s.el.classList.contains('playing') !== on) s.el.classList.toggle('playing', on);
  }
  for (const w of document.querySelectorAll('#tr-segments .word.playing')) w.classList.remove('playing');
  const seg = segments.find((s) => now >= s.start && now < s.end);
  if (seg && wave) wave.select(segments.indexOf(seg));
  if (seg?.el) {
    for (const w of seg.el.querySelectorAll('.word')) {
      if (now >= Number(w.dataset.start) && now < Number(w.dataset.end)) w.classList.add('playing');
    }
  }
}

// ---- search: wraps matches in <mark> inside the text nodes of each segment

function highlight(q) {
  for (const m of document.querySelectorAll('#tr-segments mark')) m.replaceWith(...m.childNodes);
  $('#tr-segments').normalize();
  matches = [];
  matchAt = -1;
  const needle = q.trim().toLowerCase();
  for (const s of segments) s.el?.classList.remove('hit');
  if (!needle) { $('#tr-count').textContent = ''; setNav(); return; }
  for (const s of segments) {
    if (!s.el || !s.plain.toLowerCase().includes(needle)) continue;
    s.el.classList.add('hit');
    const walker = document.createTreeWalker(s.el.querySelector('.seg-text'), NodeFilter.SHOW_TEXT);
    const nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    // a match may span word spans: mark it per text node piece
    const text = nodes.map((n) => n.data).join('');
    const lower = text.toLowerCase();
    const ranges = [];
    for (let i = lower.indexOf(needle); i >= 0; i = lower.indexOf(needle, i + needle.length)) ranges.push([i, i + needle.length]);
    let offset = 0;
    const pieces = nodes.map((n) => { const r = { n, from: offset, to: offset + n.data.length }; offset = r.to; return r; });
    for (const [a, b] of ranges) {
      let first = null;
      for (const p of pieces) {
        const lo = Math.max(a, p.from), hi = Math.min(b, p.to);
        if (lo >= hi) continue;
        const m = wrap(p, lo, hi);
        if (!first) { first = m; matches.push(m); } else m.classList.add('cont');
      }
    }
  }
  $('#tr-count').textContent = matches.length ? `${matches.length} match${matches.length > 1 ? 'es' : ''}` : 'No matches';
  setNav();
  if (matches.length) step(1);
}

// wraps [lo, hi) of the piece's text node in <mark>; keeps the piece pointing at the tail
function wrap(p, lo, hi) {
  let node = p.n;
  const start = lo - p.from;
  if (start > 0) { node = node.splitText(start); p.from = lo; }
  const tail = node.splitText(hi - lo);
  const m = document.createElement('mark');
  node.replaceWith(m);
  m.append(node);
  p.n = tail;
  p.from = hi;
  return m;
}

function setNav() {
  $('#tr-prev').disabled = $('#tr-next').disabled = matches.length < 2;
}

function step(d) {
  if (!matches.length) return;
  matches[matchAt]?.classList.remove('current');
  matchAt = (matchAt + d + matches.length) % matches.length;
  const m = matches[matchAt];
  m.classList.add('current');
  m.scrollIntoView({ block: 'nearest' });
  $('#tr-count').textContent = `${matchAt + 1} of ${matches.length}`;
}

async function copy() {
  const btn = $('#tr-copy');
  try {
    await navigator.clipboard.writeText(fullText);
  } catch {
    // clipboard API refused (e.g. not a secure context): fall back to a selection copy
    const ta = h('textarea', { readonly: true, class: 'visually-hidden' });
    ta.value = fullText;
    document.body.append(ta);
    ta.select();
    const ok = document.execCommand('copy');
    ta.remove();
    if (!ok) { toast('Copy failed: select the text and copy it by hand.', 'error'); return; }
  }
  btn.textContent = 'Copied';
  btn.classList.add('ok');
  toast('Transcript copied to the clipboard.', 'ok', 2500);
  setTimeout(() => { btn.textContent = 'Copy text'; btn.classList.remove('ok'); }, 2000);
}

async function downloadWithToken(a) {
  try {
    const b = await fetchBlob(a.getAttribute('href'));
    const url = URL.createObjectURL(b);
    const tmp = h('a', { href: url, download: a.getAttribute('download') });
    document.body.append(tmp);
    tmp.click();
    tmp.remove();
    setTimeout(() => URL.revokeObjectURL(url), 5000);
  } catch (e) { toast(`Download failed: ${e.message}`, 'error'); }
}
