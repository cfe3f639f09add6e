// Renders /openapi.json as a list of operations (no external assets).
const root = document.getElementById('ops');

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

async function main() {
  const spec = await (await fetch('/openapi.json')).json();
  root.replaceChildren();
  const intro = el('section', 'card');
  intro.append(el('h2', '', `${spec.info.title} ${spec.info.version}`), el('p', '', spec.info.description));
  root.append(intro);
  const groups = new Map();
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || 'other';
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push({ path, method, op });
    }
  }
  for (const [tag, ops] of groups) {
    const sec = el('section', 'card');
    sec.append(el('h2', '', tag));
    for (const { path, method, op } of ops) {
      const d = el('details', 'op');
      const s = el('summary');
      s.append(el('span', `m m-${method}`, method.toUpperCase()), document.createTextNode(`${path}  `),
               el('span', '', op.summary || ''));
      if (op.security) s.append(el('span', 'lock', '(token when API_TOKEN is set)'));
      d.append(s, el('pre', '', JSON.stringify(op, null, 2)));
      sec.append(d);
    }
    root.append(sec);
  }
}

main().catch((e) => { root.textContent = `Cannot load the API description: ${e.message}`; });
