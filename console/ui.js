// Small DOM helpers shared by the console's views: elements, labelled fields, the live
// status region, the confirmation dialog, and how times and ages read.

/** An element: `attrs` sets attributes (`class`, `for`, `aria-*`, …), `on*` listeners and
 * `text`; children are nodes or strings (never parsed as HTML). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'text') el.textContent = value;
    else if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name in el && typeof value !== 'string') el[name] = value;
    else el.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

let ids = 0;
/** A fresh id for a label's `for`. */
export const uid = (stem) => `${stem}-${++ids}`;

/** A labelled field: the label names the control, a hint describes it. `field` is the API's
 * name for it, so an error naming that field lands here. */
export function field(label, control, { hint, name } = {}) {
  control.id ||= uid('f');
  if (name) control.dataset.field = name;
  const children = [h('label', { for: control.id, text: label }), control];
  if (hint) {
    const hintId = uid('hint');
    control.setAttribute('aria-describedby', hintId);
    children.push(h('span', { id: hintId, class: 'hint', text: hint }));
  }
  return h('div', { class: 'field' }, children);
}

/** The page heading, focused when a view opens so screen readers announce it. */
export function heading(text) {
  document.title = `${text} · herald console`;
  return h('h1', { tabindex: '-1', text });
}

let clearStatus;
/** Says something in the polite live region (and shows it for a few seconds). */
export function announce(text) {
  const status = document.getElementById('status');
  status.textContent = text;
  clearTimeout(clearStatus);
  clearStatus = setTimeout(() => { status.textContent = ''; }, 8000);
}

/** An error for the page: the API's message, and the field it names when it names one. */
export function problemText(error) {
  if (error?.field) return `${error.message} (field: ${error.field})`;
  return error?.message ?? String(error);
}

export function errorBox(error) {
  return h('p', { class: 'error', role: 'alert', text: problemText(error) });
}

/** Marks the control whose `data-field` the error names (or a prefix of it) and focuses it. */
export function markFieldError(form, error) {
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  for (const el of form.querySelectorAll('.field-error')) el.remove();
  if (!error?.field) return false;
  // Visible controls first (two may share a field: the uploaded file and the S3 URI), and
  // those that take focus before a fieldset that only groups them.
  const visible = (c) => c.getClientRects().length > 0;
  const all = [...form.querySelectorAll('[data-field]')].filter(visible);
  const controls = [...all.filter((c) => c.tagName !== 'FIELDSET'), ...all.filter((c) => c.tagName === 'FIELDSET')];
  const control = controls.find((c) => error.field === c.dataset.field)
    ?? controls.find((c) => error.field.startsWith(`${c.dataset.field}[`) || error.field.startsWith(`${c.dataset.field}.`));
  if (!control) return false;
  const messageId = uid('err');
  control.setAttribute('aria-invalid', 'true');
  const described = control.getAttribute('aria-describedby');
  control.setAttribute('aria-describedby', described ? `${messageId} ${described}` : messageId);
  control.closest('.field, fieldset')?.append(h('span', { id: messageId, class: 'error field-error', text: error.message }));
  (control.tagName === 'FIELDSET' ? control.querySelector('input') : control)?.focus();
  return true;
}

/** Asks before something that cannot be undone; resolves true only on the confirm button.
 * The dialog is modal: focus starts on the safe choice and Escape keeps things as they are. */
export function confirmAction({ title, text, confirm }) {
  const dialog = document.getElementById('confirm');
  dialog.querySelector('#confirm-title').textContent = title;
  dialog.querySelector('#confirm-text').textContent = text;
  dialog.querySelector('#confirm-ok').textContent = confirm;
  const opener = document.activeElement;
  dialog.returnValue = 'cancel';
  dialog.showModal();
  dialog.querySelector('#confirm-keep').focus();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      opener?.focus?.();
      resolve(dialog.returnValue === 'ok');
    }, { once: true });
  });
}

/** "3 s", "4 min", "2 h 5 min", "3 d". */
export function age(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  return `${Math.floor(seconds / 86400)} d`;
}

/** An instant in the operator's own time zone. */
export function when(iso) {
  if (!iso) return '—';
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? iso : at.toLocaleString();
}

export function badge(state) {
  return h('span', { class: `badge ${state}`, text: state });
}

/** A table: a caption (for screen readers), column headings, rows of cells. */
export function table(caption, headings, rows) {
  return h('table', {},
    h('caption', { class: 'visually-hidden', text: caption }),
    h('thead', {}, h('tr', {}, headings.map((th) => (th instanceof Node ? h('th', { scope: 'col' }, th)
      : h('th', { scope: 'col', class: th.endsWith('#') ? 'num' : undefined, text: th.replace(/#$/, '') }))))),
    h('tbody', {}, rows));
}
