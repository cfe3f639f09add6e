// gpuscribe web UI: GPU status badge (polls /api/gpu-status every 30 s).
const badge = document.getElementById('gpu-badge');
const message = document.getElementById('gpu-message');

async function refreshStatus() {
  try {
    const r = await fetch('/api/gpu-status', { headers: { Accept: 'application/json' } });
    const s = await r.json();
    if (!r.ok) throw new Error(s.error || r.statusText);
    if (s.available) {
      badge.className = 'badge badge-ok';
      badge.textContent = s.type === 'vast' ? `GPU: Vast.ai #${s.vast_instance}` : 'GPU: Local';
    } else {
      badge.className = 'badge badge-bad';
      badge.textContent = 'No GPU available';
    }
    message.textContent = s.message;
  } catch (e) {
    badge.className = 'badge badge-bad';
    badge.textContent = 'Server unreachable';
    message.textContent = String(e.message || e);
  }
}

refreshStatus();
setInterval(refreshStatus, 30000);
