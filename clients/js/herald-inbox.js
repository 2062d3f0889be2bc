// herald-inbox.js — the <herald-inbox> custom element: a notification bell with a badge and a panel of messages, built on herald.js.
import { HeraldClient, initialState } from './herald.js';

/**
 * @typedef {import('./herald.js').HeraldState} HeraldState
 * @typedef {import('./herald.js').Message} Message
 * @typedef {import('./herald.js').Status} Status
 */

/**
 * What the element shows, computed purely from a state (testable without a DOM).
 * Archived messages are left out of the list. `unauthorized` (the feed stopped on a refused
 * token) shows as "signed out": `indicator` 'unauthorized' and a `notice` to sign in again.
 * @param {HeraldState} state
 * @param {{ badge?: 'unread' | 'unseen', status?: Status, unauthorized?: boolean, now?: number }} options
 */
export function inboxView(state, { badge = 'unread', status = 'closed', unauthorized = false, now = Date.now() } = {}) {
  const unread = state.unread;
  const count = badge === 'unseen' ? unread.unseen.total : unread.total;
  const items = state.messages
    .filter((m) => !m.archived)
    .map((m) => ({
      id: m.id,
      room: m.room_id,
      title: m.title ?? '',
      body: m.body ?? '',
      createdAt: m.created_at,
      time: relativeTime(m.created_at, now),
      read: !!m.read,
      seen: !!m.seen,
      className: m.read ? 'read' : 'unread',
    }));
  const signedOut = !!unauthorized;
  return {
    count,
    badgeHidden: !(count > 0),
    unreadTotal: unread.total,
    unseenTotal: unread.unseen.total,
    status,
    signedOut,
    indicator: signedOut ? 'unauthorized' : status,
    statusText: signedOut ? 'signed out' : STATUS_TEXT[status] ?? status,
    notice: signedOut ? SIGNED_OUT_NOTICE : null,
    items,
    empty: items.length === 0,
  };
}

const STATUS_TEXT = /** @type {Record<string, string>} */ ({
  open: 'live',
  connecting: 'connecting…',
  reconnecting: 'reconnecting…',
  closed: 'offline',
});

const SIGNED_OUT_NOTICE = 'Signed out: the server refused the token. Sign in again to see new notifications.';

/**
 * A short relative time: "now", "5m", "3h", "2d", then the date.
 * @param {string} iso RFC 3339
 * @param {number} now epoch milliseconds
 */
export function relativeTime(iso, now) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return 'now';
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  if (s < 7 * 86_400) return `${Math.floor(s / 86_400)}d`;
  const d = new Date(t);
  const sameYear = d.getFullYear() === new Date(now).getFullYear();
  return d.toLocaleDateString(undefined, sameYear ? { month: 'short', day: 'numeric' } : { year: 'numeric', month: 'short', day: 'numeric' });
}

/**
 * The default live URL for a page: ws(s)://<host>/live.
 * @param {{ protocol: string, host: string }} location
 */
export function defaultWsUrl(location) {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/live`;
}

const STYLE = `
:host {
  --herald-bg: #ffffff;
  --herald-fg: #1f2328;
  --herald-muted: #656d76;
  --herald-border: #d0d7de;
  --herald-hover: #f3f4f6;
  --herald-unread-bg: #f0f6ff;
  --herald-accent: #2563eb;
  --herald-badge-bg: #dc2626;
  --herald-badge-fg: #ffffff;
  display: inline-block;
  position: relative;
  font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--herald-fg);
}
@media (prefers-color-scheme: dark) {
  :host {
    --herald-bg: #1c2128;
    --herald-fg: #e6edf3;
    --herald-muted: #8d96a0;
    --herald-border: #373e47;
    --herald-hover: #262c36;
    --herald-unread-bg: #1d2a3d;
    --herald-accent: #4493f8;
  }
}
[hidden] { display: none !important; }
button { font: inherit; color: inherit; cursor: pointer; }
.bell {
  position: relative; display: grid; place-items: center;
  width: 40px; height: 40px; padding: 0; border-radius: 50%;
  border: 1px solid var(--herald-border); background: var(--herald-bg);
}
.bell:hover { background: var(--herald-hover); }
.bell:focus-visible, .panel button:focus-visible { outline: 2px solid var(--herald-accent); outline-offset: 2px; }
.bell svg { width: 20px; height: 20px; }
.badge {
  position: absolute; top: -4px; right: -6px; min-width: 18px; height: 18px; padding: 0 5px;
  box-sizing: border-box; border-radius: 9px; border: 2px solid var(--herald-bg);
  background: var(--herald-badge-bg); color: var(--herald-badge-fg);
  font-size: 11px; font-weight: 700; line-height: 14px; text-align: center;
}
.status {
  position: absolute; left: 1px; bottom: 1px; width: 10px; height: 10px; border-radius: 50%;
  border: 2px solid var(--herald-bg); box-sizing: border-box; background: #9ca3af;
}
.status[data-status="open"] { background: #16a34a; }
.status[data-status="connecting"], .status[data-status="reconnecting"] { background: #f59e0b; }
.status[data-status="unauthorized"] { background: #dc2626; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.panel {
  position: absolute; z-index: 1000; top: calc(100% + 8px); right: 0;
  width: min(380px, 92vw); max-height: min(480px, 75vh);
  display: flex; flex-direction: column; overflow: hidden;
  background: var(--herald-bg); border: 1px solid var(--herald-border); border-radius: 12px;
  box-shadow: 0 12px 32px rgb(0 0 0 / 0.18);
}
header {
  display: flex; align-items: center; gap: 8px; padding: 10px 12px 10px 16px;
  border-bottom: 1px solid var(--herald-border);
}
h2 { flex: 1; margin: 0; font-size: 15px; font-weight: 600; }
.live { font-size: 12px; color: var(--herald-muted); }
.link {
  border: 0; background: none; padding: 4px 6px; border-radius: 6px;
  color: var(--herald-accent); font-size: 13px;
}
.link:hover:not(:disabled) { background: var(--herald-hover); }
.link:disabled { color: var(--herald-muted); cursor: default; opacity: 0.6; }
ul { list-style: none; margin: 0; padding: 0; overflow-y: auto; }
li {
  display: grid; grid-template-columns: 8px 1fr; gap: 4px 10px; padding: 12px 14px 10px 12px;
  border-bottom: 1px solid var(--herald-border);
}
li:last-child { border-bottom: 0; }
li.unread { background: var(--herald-unread-bg); }
.dot { width: 8px; height: 8px; margin-top: 6px; border-radius: 50%; }
li.unread .dot { background: var(--herald-accent); }
.title { font-weight: 500; overflow-wrap: anywhere; }
li.unread .title { font-weight: 650; }
.body { grid-column: 2; color: var(--herald-muted); overflow-wrap: anywhere; white-space: pre-line; }
.meta { grid-column: 2; display: flex; align-items: center; gap: 8px; font-size: 12px; color: var(--herald-muted); }
.meta .room { flex: 1; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.meta .link { font-size: 12px; padding: 2px 6px; }
.empty, .error { margin: 0; padding: 28px 16px; text-align: center; color: var(--herald-muted); }
.error { padding: 8px 16px; color: #dc2626; font-size: 12px; border-top: 1px solid var(--herald-border); }
`;

const BELL_SVG = `<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true"><path d="M6 8a6 6 0 0 1 12 0c0 7 3 9 3 9H3s3-2 3-9"/><path d="M10.3 21a1.94 1.94 0 0 0 3.4 0"/></svg>`;

const TEMPLATE = `
<style>${STYLE}</style>
<button part="bell" class="bell" type="button" aria-label="Notifications" aria-haspopup="true" aria-expanded="false" aria-controls="panel">
  ${BELL_SVG}
  <span part="badge" class="badge" data-testid="badge" hidden>0</span>
</button>
<span part="status" class="status" data-testid="status" data-status="closed" title="Live feed: closed"><span class="sr">closed</span></span>
<section part="panel" class="panel" id="panel" role="dialog" aria-label="Notifications" hidden>
  <header part="header">
    <h2>Notifications</h2>
    <span class="live" aria-live="polite"></span>
    <button part="mark-all-read" class="link" type="button" data-testid="mark-all-read">Mark all read</button>
  </header>
  <ul part="list" class="list"></ul>
  <p part="empty" class="empty" data-testid="empty">No notifications yet</p>
  <p part="error" class="error" data-testid="error" role="alert" hidden></p>
</section>
`;

const Base = /** @type {typeof HTMLElement} */ (globalThis.HTMLElement ?? class {});

/**
 * `<herald-inbox api ws user token badge>`: see README.md. Dispatches `herald-update`
 * (detail: state), `herald-frame` (detail: frame) and `herald-error` (detail: HeraldError).
 */
export class HeraldInbox extends Base {
  static get observedAttributes() {
    return ['api', 'ws', 'user', 'token', 'badge'];
  }

  constructor() {
    super();
    /** @type {HeraldClient | null} */
    this._injected = null;
    /** @type {HeraldClient | null} */
    this._client = null;
    /** @type {{ close(): void } | null} */
    this._sub = null;
    /** @type {HeraldState} */
    this._state = initialState();
    /** @type {Status} */
    this._status = 'closed';
    /** Whether the feed stopped on a refused token (until it connects again). */
    this._unauthorized = false;
    this._restartQueued = false;
    this._ticker = null;
    /** @type {Map<string, HTMLLIElement>} */
    this._items = new Map();
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = TEMPLATE;
    const $ = (/** @type {string} */ sel) => /** @type {HTMLElement} */ (root.querySelector(sel));
    this._el = {
      bell: $('.bell'),
      badge: $('.badge'),
      status: $('.status'),
      panel: $('.panel'),
      live: $('.live'),
      markAll: $('[data-testid="mark-all-read"]'),
      list: $('.list'),
      empty: $('.empty'),
      error: $('.error'),
    };
    this._el.bell.addEventListener('click', () => this.toggle());
    this._el.markAll.addEventListener('click', () => this._act(this._client?.markAllRead()));
    this._el.list.addEventListener('click', (e) => this._onListClick(e));
    this._onKey = (/** @type {KeyboardEvent} */ e) => {
      if (e.key !== 'Escape' || !this.open) return;
      const inside = e.composedPath().includes(this);
      this.toggle(false);
      if (inside) this._el.bell.focus();
    };
    this._onOutside = (/** @type {Event} */ e) => {
      if (this.open && !e.composedPath().includes(this)) this.toggle(false);
    };
  }

  /** A ready HeraldClient to use instead of one built from the attributes. */
  get client() {
    return this._client;
  }
  set client(client) {
    this._injected = client ?? null;
    this._scheduleRestart();
  }

  /** The last state shown. */
  get state() {
    return this._state;
  }

  /** The live feed's status. */
  get status() {
    return this._status;
  }

  /** Whether the panel is open. */
  get open() {
    return !this._el.panel.hidden;
  }

  /**
   * Opens or closes the panel. Opening it marks everything seen (what opening the feed does).
   * @param {boolean} [force]
   */
  toggle(force) {
    const open = force ?? !this.open;
    this._el.panel.hidden = !open;
    this._el.bell.setAttribute('aria-expanded', String(open));
    if (open && this._state.unread.unseen.total > 0) this._act(this._client?.markAllSeen());
  }

  connectedCallback() {
    document.addEventListener('pointerdown', this._onOutside, true);
    document.addEventListener('keydown', this._onKey);
    this._ticker = setInterval(() => this._render(), 60_000);
    this._scheduleRestart();
  }

  disconnectedCallback() {
    document.removeEventListener('pointerdown', this._onOutside, true);
    document.removeEventListener('keydown', this._onKey);
    if (this._ticker != null) clearInterval(this._ticker);
    this._stop();
  }

  /**
   * A new `token` goes to the running client (`setToken`: the socket is kept, and a feed stopped
   * on a refused token connects again); other attributes, or a token with no client to take it
   * (none yet, or one about to be rebuilt), restart the feed.
   * @param {string} name @param {string | null} old @param {string | null} value
   */
  attributeChangedCallback(name, old, value) {
    if (old === value) return;
    if (name === 'badge') return this._render();
    if (name === 'token' && value) {
      const client = this._injected ?? (this._restartQueued ? null : this._client);
      if (client) {
        client.setToken(value);
        if (client === this._client && this._sub) return;
      }
    }
    this._scheduleRestart();
  }

  // Restarts once per task, however many attributes changed.
  _scheduleRestart() {
    if (this._restartQueued) return;
    this._restartQueued = true;
    queueMicrotask(() => {
      this._restartQueued = false;
      if (this.isConnected) this._start();
    });
  }

  _start() {
    this._stop();
    let client = this._injected;
    if (!client) {
      const user = this.getAttribute('user');
      const token = this.getAttribute('token');
      if (user && token) {
        client = new HeraldClient({
          baseUrl: this.getAttribute('api') || location.origin,
          wsUrl: this.getAttribute('ws') || defaultWsUrl(location),
          user,
          token,
        });
      }
    }
    this._client = client;
    this._state = client ? client.state : initialState();
    this._items.forEach((li) => li.remove());
    this._items.clear();
    this._unauthorized = false;
    this._showError(null);
    if (client) {
      try {
        this._sub = client.subscribe((state) => this._onState(state), {
          onStatus: (status) => this._onStatus(status),
          onFrame: (frame) => this._emit('herald-frame', frame),
          onError: (error) => this._onError(error),
        });
      } catch (e) {
        this._onError(e);
      }
    }
    this._render();
    this._emit('herald-update', this._state);
  }

  _stop() {
    const sub = this._sub;
    this._sub = null;
    sub?.close();
    this._status = 'closed';
  }

  /** @param {Status} status */
  _onStatus(status) {
    this._status = status;
    if (status !== 'closed' && this._unauthorized) {
      this._unauthorized = false; // connecting again (a new token)
      this._showError(null);
    }
    this._render();
  }

  /** @param {HeraldState} state */
  _onState(state) {
    this._state = state;
    this._render();
    this._emit('herald-update', state);
  }

  /** @param {unknown} error */
  _onError(error) {
    // the client stops the feed (status 'closed') before it reports a refused token
    if (/** @type {any} */ (error)?.code === 'unauthorized' && this._status === 'closed' && this._client) {
      this._unauthorized = true;
      this._render(); // the notice replaces the error line
    } else {
      this._showError(error instanceof Error ? error.message : String(error));
    }
    this._emit('herald-error', error);
  }

  /** @param {Promise<unknown> | undefined} promise a client call started by the user */
  _act(promise) {
    promise?.then(() => this._showError(null), (e) => this._onError(e));
  }

  /** @param {Event} event */
  _onListClick(event) {
    const button = /** @type {HTMLElement} */ (event.target).closest?.('button[data-action]');
    const li = button?.closest('li');
    if (!button || !li || !this._client) return;
    const { id, room } = /** @type {HTMLElement} */ (li).dataset;
    if (button.getAttribute('data-action') === 'read' && room) this._act(this._client.markRoomRead(room));
    if (button.getAttribute('data-action') === 'archive' && id) this._act(this._client.archive([id]));
  }

  /** @param {string | null} message null: clear it (the signed-out notice stays while signed out) */
  _showError(message) {
    const text = message ?? (this._unauthorized ? SIGNED_OUT_NOTICE : null);
    this._el.error.hidden = !text;
    this._el.error.textContent = text ?? '';
  }

  /** @param {string} type @param {unknown} detail */
  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }

  _render() {
    const badge = this.getAttribute('badge') === 'unseen' ? 'unseen' : 'unread';
    const view = inboxView(this._state, { badge, status: this._status, unauthorized: this._unauthorized });
    const el = this._el;
    el.badge.textContent = String(view.count);
    el.badge.hidden = view.badgeHidden;
    this.setAttribute('data-count', String(view.count));
    this.setAttribute('data-status', view.indicator);
    el.bell.title = view.count > 0 ? `${view.count} ${badge}` : 'Notifications';
    el.status.setAttribute('data-status', view.indicator);
    el.status.title = view.signedOut ? 'Signed out: the token was refused' : `Live feed: ${view.status}`;
    /** @type {HTMLElement} */ (el.status.firstElementChild).textContent = view.signedOut ? 'signed out' : view.status;
    el.live.textContent = view.statusText;
    if (view.notice) this._showError(view.notice);
    /** @type {HTMLButtonElement} */ (el.markAll).disabled = view.unreadTotal === 0 && view.items.every((i) => i.read);
    el.empty.hidden = !view.empty;
    el.empty.textContent = this._client ? 'No notifications yet' : 'Sign in to see notifications';

    // keyed update: keep the <li> of each id (and the focus inside it)
    const keep = new Set(view.items.map((i) => i.id));
    for (const [id, li] of this._items) {
      if (!keep.has(id)) {
        li.remove();
        this._items.delete(id);
      }
    }
    /** @type {HTMLLIElement | null} */
    let previous = null;
    for (const item of view.items) {
      let li = this._items.get(item.id);
      if (!li) {
        li = createItem();
        this._items.set(item.id, li);
      }
      fillItem(li, item);
      /** @type {ChildNode | null} */
      const expected = previous ? previous.nextSibling : el.list.firstChild;
      if (expected !== li) el.list.insertBefore(li, expected);
      previous = li;
    }
  }
}

function createItem() {
  const li = document.createElement('li');
  li.setAttribute('part', 'item');
  li.innerHTML = `
    <span class="dot" aria-hidden="true"></span>
    <span class="title" part="title"></span>
    <span class="body" part="body"></span>
    <span class="meta">
      <time part="time"></time>
      <span class="room"></span>
      <button class="link" type="button" data-action="read" data-testid="mark-read">Mark read</button>
      <button class="link" type="button" data-action="archive" data-testid="archive">Archive</button>
    </span>`;
  return li;
}

/** @param {HTMLLIElement} li @param {ReturnType<typeof inboxView>['items'][number]} item */
function fillItem(li, item) {
  li.dataset.id = item.id;
  li.dataset.room = item.room;
  li.className = item.className;
  const q = (/** @type {string} */ s) => /** @type {HTMLElement} */ (li.querySelector(s));
  q('.title').textContent = item.title;
  q('.body').textContent = item.body;
  q('.body').hidden = !item.body;
  const time = /** @type {HTMLTimeElement} */ (q('time'));
  time.dateTime = item.createdAt;
  time.textContent = item.time;
  time.title = Number.isNaN(Date.parse(item.createdAt)) ? '' : new Date(item.createdAt).toLocaleString();
  q('.room').textContent = `#${item.room}`;
  q('[data-action="read"]').hidden = item.read;
  q('[data-action="read"]').setAttribute('aria-label', `Mark ${item.room} read`);
  q('[data-action="archive"]').setAttribute('aria-label', `Archive “${item.title}”`);
}

if (globalThis.customElements && !globalThis.customElements.get('herald-inbox')) {
  globalThis.customElements.define('herald-inbox', HeraldInbox);
}
