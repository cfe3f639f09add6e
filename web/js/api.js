// Talking to the gpuscribe server: JSON requests, the optional API token, the route list
// (from /openapi.json, so the UI uses routes only where the server has them) and the event
// stream (Server-Sent Events read with fetch, so a Bearer token can be sent).

const TOKEN_KEY = 'gpuscribe.apiToken';

export class ApiError extends Error {
  constructor(status, body, fallback) {
    super((body && body.error) || fallback || `HTTP ${status}`);
    this.status = status;
    this.kind = body && body.kind;
    this.body = body;
  }
}

export function getToken() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}
export function setToken(t) {
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
  } catch { /* storage disabled: the token lasts until reload */ }
  memToken = t;
  authBlocked = false;
}
let memToken = '';
export function authHeaders(extra = {}) {
  const t = getToken() || memToken;
  return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
}

const authListeners = new Set();
let authBlocked = false;
/** cb() runs when a request was refused for a missing or wrong API token */
export function onAuthNeeded(cb) { authListeners.add(cb); }
function authNeeded() { authBlocked = true; for (const cb of authListeners) cb(); }
/** true after a 401 until a token is entered: pollers wait instead of asking again */
export const authIsBlocked = () => authBlocked;

/** fetch + JSON; throws ApiError with the server's message on a non-2xx answer */
export async function api(method, path, { body, headers = {}, signal } = {}) {
  const init = { method, headers: authHeaders({ Accept: 'application/json', ...headers }), signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, null, 'The server cannot be reached. Is gpuscribe still running?');
  }
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: text.slice(0, 300) }; }
  if (r.status === 401) authNeeded();
  if (!r.ok) throw new ApiError(r.status, data, r.statusText);
  return data;
}

/** Routes the server has, from its OpenAPI description: has('GET', '/api/cost') */
let routes = null;
export async function loadRoutes() {
  try {
    const spec = await api('GET', '/openapi.json');
    routes = new Set();
    for (const [p, item] of Object.entries(spec.paths || {}))
      for (const m of Object.keys(item)) routes.add(`${m.toUpperCase()} ${p}`);
  } catch {
    routes = new Set();
  }
  return routes;
}
export function hasRoute(method, pathPattern) {
  if (!routes) return false;
  if (routes.has(`${method} ${pathPattern}`)) return true;
  // parameter names may differ: compare with {..} segments normalised
  const norm = (s) => s.replace(/\{[^}]+\}/g, '{}');
  const want = `${method} ${norm(pathPattern)}`;
  for (const r of routes) if (norm(r) === want) return true;
  return false;
}

/** Fetches a resource as a Blob (used when a token must be sent, e.g. for audio). */
export async function fetchBlob(path) {
  const r = await fetch(path, { headers: authHeaders() });
  if (r.status === 401) authNeeded();
  if (!r.ok) throw new ApiError(r.status, null, `HTTP ${r.status}`);
  return r.blob();
}

/**
 * Event stream: calls handlers[type](data) for each event; reconnects with backoff.
 * onState('open' | 'closed') reports the connection.
 */
export function openEvents(handlers, onState = () => {}) {
  let lastId = null, delay = 1000, stopped = false, ctrl = null;

  async function connect() {
    ctrl = new AbortController();
    try {
      const headers = authHeaders({ Accept: 'text/event-stream' });
      if (lastId) headers['Last-Event-ID'] = lastId;
      const r = await fetch('/api/events', { headers, signal: ctrl.signal, cache: 'no-store' });
      if (r.status === 401) { authNeeded(); onState('closed'); return; } // resumes with a token
      if (!r.ok || !r.body) throw new Error(`events: HTTP ${r.status}`);
      onState('open');
      delay = 1000;
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          dispatch(block);
        }
      }
    } catch (e) {
      if (stopped) return;
    }
    if (stopped) return;
    onState('closed');
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 15000);
  }

  function dispatch(block) {
    let type = 'message', data = '';
    for (const line of block.split('\n')) {
      if (!line || line.startsWith(':')) continue;
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      const val = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
      if (field === 'event') type = val;
      else if (field === 'data') data += (data ? '\n' : '') + val;
      else if (field === 'id') lastId = val;
      else if (field === 'retry' && /^\d+$/.test(val)) delay = Math.max(500, Number(val));
    }
    if (!data) return;
    let obj;
    try { obj = JSON.parse(data); } catch { return; }
    const fn = handlers[type] || handlers['*'];
    if (fn) {
      try { fn(obj, type); } catch (e) { setTimeout(() => { throw e; }); }
    }
  }

  connect();
  return { close() { stopped = true; ctrl?.abort(); } };
}
