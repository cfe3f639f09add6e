// Modal dialogs on the native <dialog> element: showModal() makes the page behind inert;
// here Tab and Shift+Tab also cycle inside the dialog, Escape closes it (unless the caller
// says it may not close right now), and focus returns to where it was.

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]),' +
  ' textarea:not([disabled]), audio[controls], [tabindex]:not([tabindex="-1"])';

export function focusables(root) {
  return [...root.querySelectorAll(FOCUSABLE)].filter((e) => e.offsetParent !== null || e === document.activeElement);
}

export class Modal {
  /** @param {HTMLDialogElement} dlg  @param {{canClose?: () => boolean, onClose?: () => void}} opts */
  constructor(dlg, opts = {}) {
    this.dlg = dlg;
    this.opts = opts;
    this.returnFocus = null;
    dlg.addEventListener('cancel', (e) => { // Escape
      e.preventDefault();
      this.close();
    });
    dlg.addEventListener('keydown', (e) => {
      if (e.key !== 'Tab') return;
      const f = focusables(dlg);
      if (!f.length) { e.preventDefault(); return; }
      const first = f[0], last = f[f.length - 1];
      if (e.shiftKey && (document.activeElement === first || !dlg.contains(document.activeElement))) {
        e.preventDefault(); last.focus();
      } else if (!e.shiftKey && (document.activeElement === last || !dlg.contains(document.activeElement))) {
        e.preventDefault(); first.focus();
      }
    });
    dlg.addEventListener('click', (e) => { // a click on the backdrop closes
      if (e.target === dlg) {
        const r = dlg.getBoundingClientRect();
        const inside = e.clientX >= r.left && e.clientX <= r.right && e.clientY >= r.top && e.clientY <= r.bottom;
        if (!inside) this.close();
      }
    });
    for (const b of dlg.querySelectorAll('[data-close]')) b.addEventListener('click', () => this.close());
  }

  get isOpen() { return this.dlg.open; }

  open(focusEl) {
    if (!this.dlg.open) {
      this.returnFocus = document.activeElement;
      this.dlg.showModal();
    }
    const target = focusEl || this.dlg.querySelector('[autofocus]') || focusables(this.dlg)[0];
    target?.focus();
  }

  close() {
    if (!this.dlg.open) return;
    if (this.opts.canClose && !this.opts.canClose()) return;
    this.dlg.close();
    this.opts.onClose?.();
    const back = this.returnFocus;
    this.returnFocus = null;
    if (back && document.contains(back) && typeof back.focus === 'function') back.focus();
  }
}

/** A yes/no question in a modal; resolves true when confirmed. */
let confirmModal = null, confirmResolve = null, confirmResult = false;
export function confirmDialog({ title, body, confirmLabel = 'OK', cancelLabel = 'Cancel', danger = false }) {
  const dlg = document.getElementById('confirm-dialog');
  const ok = dlg.querySelector('#confirm-ok'), cancel = dlg.querySelector('#confirm-cancel');
  if (!confirmModal) {
    confirmModal = new Modal(dlg, {
      onClose: () => { const r = confirmResolve; confirmResolve = null; r?.(confirmResult); },
    });
    ok.addEventListener('click', () => { confirmResult = true; confirmModal.close(); });
    cancel.addEventListener('click', () => confirmModal.close());
  }
  confirmResolve?.(false);
  dlg.querySelector('#confirm-title').textContent = title;
  dlg.querySelector('#confirm-body').replaceChildren(...(Array.isArray(body) ? body : [body]).map((x) =>
    x instanceof Node ? x : Object.assign(document.createElement('p'), { textContent: x })));
  ok.textContent = confirmLabel;
  cancel.textContent = cancelLabel;
  ok.className = danger ? 'btn danger' : 'btn primary';
  confirmResult = false;
  return new Promise((resolve) => {
    confirmResolve = resolve;
    confirmModal.open(cancel); // the safe choice has focus
  });
}
