// herald.js — dependency-free client (browsers and node ≥ 22; node 20 with a WebSocket passed in) for herald's inbox HTTP API and its live WebSocket feed.

/**
 * @typedef {{ total: number, rooms: Record<string, number> }} Counts
 * @typedef {Counts & { unseen: Counts }} UnreadCounts
 * @typedef {{ version?: number, total: number, rooms: Record<string, number>, unseen?: Counts }} Unread
 * @typedef {{ id: string, room_id: string, title: string, body: string, created_at: string,
 *   read: boolean, seen: boolean, archived: boolean, data?: Record<string, unknown> }} Message
 *   `data` is absent when the message has none
 * @typedef {{ version: number | null, unread: UnreadCounts, messages: Message[] }} HeraldState
 * @typedef {{ initialMs?: number, maxMs?: number }} Backoff
 * @typedef {'connecting' | 'open' | 'closed' | 'reconnecting'} Status
 * @typedef {{ attempt: number, socket: any, opened: boolean, heartbeat: any, reconnect: any,
 *   loaded: boolean, stopped: boolean, halted: boolean, refusal: HeraldError | null,
 *   pageQueued: { socket: any, promise: Promise<void> } | null, pageTail: Promise<void> | null }} Live
 *   one subscription's connection, across reconnects; `halted` (with `refusal`, the error that
 *   said so) while stopped on a refused token until setToken; `pageQueued`/`pageTail` serialize
 *   the re-reads of the newest page
 */

/** The heartbeat interval: the gateway closes connections idle for 10 minutes. */
export const DEFAULT_HEARTBEAT_MS = 300_000;
/** Reconnection back-off defaults. */
export const DEFAULT_BACKOFF = Object.freeze({ initialMs: 500, maxMs: 30_000 });
/** How many of the newest messages a subscription re-reads on every open and after a truncated frame. */
export const FIRST_PAGE_LIMIT = 20;

/** An error answered by herald (non-2xx), sent as an error frame, or met on the way (status 0). */
export class HeraldError extends Error {
  /**
   * @param {string} message
   * @param {{ status?: number, code?: string, field?: string, body?: unknown, cause?: unknown }} details
   */
  constructor(message, { status = 0, code = 'error', field, body, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'HeraldError';
    /** HTTP status; 0 when there was no HTTP answer (network failure, error frame, refused socket). */
    this.status = status;
    /** herald's error code, e.g. `invalid_value`. */
    this.code = code;
    /** The offending field, when herald named one. */
    this.field = field;
    /** The parsed error body, if any. */
    this.body = body;
  }

  /**
   * Builds the error for a non-2xx answer.
   * @param {number} status
   * @param {unknown} json the parsed body, or null
   * @param {string} [text] the raw body
   */
  static fromResponse(status, json, text = '') {
    const err = isObject(json) && isObject(json.error) ? json.error : null;
    const code = typeof err?.code === 'string' ? err.code : 'http_error';
    const message =
      typeof err?.message === 'string' ? err.message : text.trim().slice(0, 200) || `HTTP ${status}`;
    const field = typeof err?.field === 'string' ? err.field : undefined;
    return new HeraldError(message, { status, code, field, body: json ?? text });
  }
}

/** @returns {HeraldState} the state before anything is known. */
export function initialState() {
  return {
    version: null,
    unread: { total: 0, rooms: {}, unseen: { total: 0, rooms: {} } },
    messages: [],
  };
}

/**
 * Applies an Unread answer (or the counts of an update frame) to a state, purely.
 * Counts replace the held ones only if their `version` is greater than the held version; an
 * Unread without `version` always replaces and leaves the held version unchanged. Without
 * `unseen` (older servers), unseen counts are taken to equal unread ones.
 * When the counts are replaced they also imply flags: the held messages of a room whose unread
 * count is now 0 (absent from `rooms`) become read and seen, and those of a room whose unseen
 * count is now 0 (when `unseen` is given) become seen.
 * @param {HeraldState} state
 * @param {Unread} unread
 * @returns {HeraldState} a new state, or `state` itself when nothing applies
 */
export function applyUnread(state, unread) {
  const next = replaceCounts(state, unread);
  return next === state ? state : impliedFlags(next, unread);
}

/**
 * The counts part of {@link applyUnread}: the version rule, without the implied flags.
 * @param {HeraldState} state
 * @param {Unread} unread
 * @returns {HeraldState} a new state when the counts were replaced, else `state` itself
 */
function replaceCounts(state, unread) {
  if (!isObject(unread) || !isCount(unread.total)) return state;
  const version = unread.version;
  const versioned = typeof version === 'number' && Number.isFinite(version);
  if (versioned && state.version != null && version <= state.version) return state;
  const counts = countsOf(unread);
  const unseen =
    isObject(unread.unseen) && isCount(unread.unseen.total)
      ? countsOf(unread.unseen)
      : { total: counts.total, rooms: { ...counts.rooms } };
  return {
    ...state,
    version: versioned ? version : state.version ?? null,
    unread: { ...counts, unseen },
  };
}

/**
 * Applies one live frame to a state, purely. Only `update` frames change anything: their
 * counts through the version rule of {@link applyUnread}, then their `changes` (idempotent).
 * A stale frame (its `version` lower than the held one) still adds its new messages and marks
 * single messages seen, but its room-wide `read`, room-wide `seen` and `archived` changes are
 * skipped: the newer state already held covers them. When the frame's counts replace the held
 * ones, the flags they imply (see {@link applyUnread}) are applied after its changes. Other
 * frame types and unknown change kinds are ignored; `truncated` is the caller's business.
 * @param {HeraldState} state
 * @param {unknown} frame
 * @returns {HeraldState} a new state, or `state` itself when nothing changed
 */
export function applyFrame(state, frame) {
  if (!isObject(frame) || frame.type !== 'update') return state;
  const stale = isCount(frame.version) && state.version != null && frame.version < state.version;
  const counted = replaceCounts(state, /** @type {Unread} */ (frame));
  let changes = Array.isArray(frame.changes) ? frame.changes : [];
  if (stale) changes = changes.filter(appliesWhenStale);
  const changed = applyChanges(counted, changes);
  return counted === state ? changed : impliedFlags(changed, /** @type {Unread} */ (frame));
}

/**
 * Applies a list of changes (`message`, `read`, `seen`, `archived`) to a state's messages, purely.
 * @param {HeraldState} state
 * @param {unknown[]} changes
 * @returns {HeraldState}
 */
export function applyChanges(state, changes) {
  let messages = state.messages;
  for (const change of changes) messages = applyChange(messages, change);
  return messages === state.messages ? state : { ...state, messages };
}

/**
 * Merges a page of messages read from the server (the HTTP list) into a state, purely: new ids
 * are added, known ones are replaced by the page's copy, flags included (`read`, `seen` and
 * `archived` are the server's, so a re-read heals a wrong flag), held messages the page does not
 * list are kept, and the list stays newest first. Counts are left alone (no implied flags).
 * @param {HeraldState} state
 * @param {Message[]} page
 * @returns {HeraldState}
 */
export function mergeMessages(state, page) {
  if (!Array.isArray(page) || page.length === 0) return state;
  const byId = new Map(state.messages.map((m) => [m.id, m]));
  for (const m of page) if (isMessage(m)) byId.set(m.id, m);
  return { ...state, messages: [...byId.values()].sort(compareMessages) };
}

/**
 * Orders messages newest first: by `created_at`, then by id descending.
 * @param {Message} a
 * @param {Message} b
 * @returns {number} negative when `a` comes first
 */
export function compareMessages(a, b) {
  const ta = Date.parse(a.created_at);
  const tb = Date.parse(b.created_at);
  const na = Number.isNaN(ta);
  const nb = Number.isNaN(tb);
  if (!na && !nb && ta !== tb) return tb - ta;
  if (na !== nb) return na ? 1 : -1; // undated last
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/**
 * The reconnection delay with exponential back-off and full jitter:
 * `random() * min(maxMs, initialMs * 2 ** attempt)`.
 * @param {number} attempt 0 for the first retry
 * @param {Backoff} backoff (optional)
 * @param {() => number} [random]
 * @returns {number} milliseconds, in [0, min(maxMs, initialMs * 2 ** attempt)]
 */
export function backoffDelay(attempt, { initialMs = 500, maxMs = 30_000 } = {}, random = Math.random) {
  const cap = Math.min(maxMs, initialMs * 2 ** Math.max(0, attempt));
  return random() * cap;
}

/**
 * The client of one user's inbox: HTTP methods, and a live subscription that keeps a state.
 */
export class HeraldClient {
  #baseUrl;
  #wsUrl;
  #token;
  #user;
  #fetch;
  #WebSocket;
  #heartbeatMs;
  #backoff;
  #setTimeout;
  #clearTimeout;
  #random;
  /** @type {HeraldState} */
  #state = initialState();
  /** @type {Status} */
  #status = 'closed';
  /** @type {Set<{onState?: Function, onStatus?: Function, onFrame?: Function, onError?: Function}>} */
  #listeners = new Set();
  /** @type {Live | null} */
  #live = null;

  /**
   * @param {{
   *   baseUrl?: string, wsUrl?: string, token: string, user: string,
   *   fetch?: typeof globalThis.fetch, WebSocket?: any, heartbeatMs?: number, backoff?: Backoff,
   *   setTimeout?: (fn: () => void, ms: number) => any, clearTimeout?: (id: any) => void,
   *   random?: () => number,
   * }} options `baseUrl` defaults to '' (same origin); `wsUrl` is needed by subscribe only.
   */
  constructor({
    baseUrl = '',
    wsUrl,
    token,
    user,
    fetch = globalThis.fetch,
    WebSocket = globalThis.WebSocket,
    heartbeatMs = DEFAULT_HEARTBEAT_MS,
    backoff = DEFAULT_BACKOFF,
    setTimeout = globalThis.setTimeout,
    clearTimeout = globalThis.clearTimeout,
    random = Math.random,
  } = /** @type {any} */ ({})) {
    if (typeof user !== 'string' || user === '') throw new TypeError('HeraldClient: `user` is required');
    this.#baseUrl = String(baseUrl).replace(/\/+$/, '');
    this.#wsUrl = wsUrl;
    this.#token = token;
    this.#user = user;
    // Called unbound: browsers refuse `window.fetch` or `setTimeout` called on another object.
    this.#fetch = fetch;
    this.#WebSocket = WebSocket;
    this.#heartbeatMs = heartbeatMs;
    this.#backoff = { ...DEFAULT_BACKOFF, ...backoff };
    this.#setTimeout = setTimeout;
    this.#clearTimeout = clearTimeout;
    this.#random = random;
  }

  /** The signed-in user's id. */
  get user() {
    return this.#user;
  }

  /** The current state (replaced, never mutated, on each change). */
  get state() {
    return this.#state;
  }

  /** The live connection's status. */
  get status() {
    return this.#status;
  }

  /**
   * Replaces the token; the next request and the next (re)connection use it. An open socket is
   * kept. A subscription stopped because the server refused the token (status `'closed'` after
   * an `unauthorized` error) connects again at once.
   * @param {string} token
   */
  setToken(token) {
    this.#token = token;
    const live = this.#live;
    if (live && live.halted && !live.stopped) {
      live.halted = false;
      live.refusal = null;
      live.attempt = 0;
      this.#connect(live);
    }
  }

  /**
   * The user's unread and unseen counts; also applied to the state (version rule).
   * @returns {Promise<Unread>}
   */
  async unread() {
    const answer = await this.#request('GET', '/unread');
    this.#update((s) => applyUnread(s, answer));
    return answer;
  }

  /**
   * A page of messages, newest first. Does not change the state.
   * @param {{ room?: string, limit?: number, cursor?: string | null, archived?: boolean }} opts
   * @returns {Promise<{ messages: Message[], next_cursor: string | null }>}
   */
  async messages({ room, limit, cursor, archived } = {}) {
    const answer = await this.#request('GET', '/messages', {
      query: { room, limit, cursor, archived: typeof archived === 'boolean' ? String(archived) : undefined },
    });
    return {
      ...answer,
      messages: Array.isArray(answer.messages) ? answer.messages : [],
      next_cursor: answer.next_cursor ?? null,
    };
  }

  /**
   * Marks a room read (its messages read and seen).
   * @param {string} room
   * @returns {Promise<Unread>}
   */
  async markRoomRead(room) {
    const answer = await this.#request('POST', `/rooms/${encodeURIComponent(room)}/read`);
    this.#update((s) => applyUnread(setFlags(s, (m) => m.room_id === room, { read: true, seen: true }), answer));
    return answer;
  }

  /** Marks every message read (and seen). @returns {Promise<Unread>} */
  async markAllRead() {
    const answer = await this.#request('POST', '/read-all');
    this.#update((s) => applyUnread(setFlags(s, () => true, { read: true, seen: true }), answer));
    return answer;
  }

  /** Marks every message seen. @returns {Promise<Unread>} */
  async markAllSeen() {
    const answer = await this.#request('POST', '/seen-all');
    this.#update((s) => applyUnread(setFlags(s, () => true, { seen: true }), answer));
    return answer;
  }

  /**
   * Marks these messages seen (1 to 100 ids).
   * @param {string[]} ids
   * @returns {Promise<Unread & { not_found: string[] }>}
   */
  async markSeen(ids) {
    const answer = await this.#request('POST', '/messages/seen', { body: { ids: [...ids] } });
    const missing = new Set(Array.isArray(answer.not_found) ? answer.not_found : []);
    const seen = new Set(ids.filter((id) => !missing.has(id)));
    this.#update((s) => applyUnread(setFlags(s, (m) => seen.has(m.id), { seen: true }), answer));
    return answer;
  }

  /**
   * Archives these messages.
   * @param {string[]} ids
   * @returns {Promise<{ archived: string[], not_found: string[] }>}
   */
  async archive(ids) {
    const answer = await this.#request('POST', '/messages/archive', { body: { ids: [...ids] } });
    const done = new Set(Array.isArray(answer.archived) ? answer.archived : []);
    this.#update((s) => setFlags(s, (m) => done.has(m.id), { archived: true }));
    return answer;
  }

  /**
   * Unarchives these messages.
   * @param {string[]} ids
   * @returns {Promise<{ unarchived: string[], not_found: string[] }>}
   */
  async unarchive(ids) {
    const answer = await this.#request('POST', '/messages/unarchive', { body: { ids: [...ids] } });
    const done = new Set(Array.isArray(answer.unarchived) ? answer.unarchived : []);
    this.#update((s) => setFlags(s, (m) => done.has(m.id), { archived: false }));
    return answer;
  }

  /**
   * Opens the live feed (one socket shared by all subscribers) and keeps the state up to date:
   * on every open (the first and each reconnect) it re-reads the counts and the newest page of
   * messages, applies every frame (re-reading that page after a `truncated` one), pings every
   * `heartbeatMs`, and reconnects with back-off after any close it did not ask for.
   * A socket that closes before opening makes it ask `unread()` over HTTP: a 401 or 403 there
   * means the token is refused, so it stops reconnecting, sets the status `'closed'` and reports
   * an `unauthorized` HeraldError (carrying that status) until {@link setToken} resumes it; any
   * other outcome reports `connect_failed` and reconnects with back-off. `onError` receives
   * those, failed re-reads and error frames; a subscriber joining a stopped subscription hears
   * `'closed'` and the `unauthorized` error at once.
   * @param {(state: HeraldState) => void} [onState]
   * @param {{ onStatus?: (status: Status) => void, onFrame?: (frame: any) => void, onError?: (error: HeraldError) => void }} handlers
   * @returns {{ close(): void }}
   */
  subscribe(onState, { onStatus, onFrame, onError } = {}) {
    if (!this.#wsUrl) throw new TypeError('HeraldClient.subscribe: `wsUrl` is required');
    if (typeof this.#WebSocket !== 'function') {
      throw new TypeError('HeraldClient.subscribe: no WebSocket; pass options.WebSocket');
    }
    const listener = { onState, onStatus, onFrame, onError };
    this.#listeners.add(listener);
    if (this.#live) {
      call(onStatus, this.#status);
      if (this.#live.refusal) call(onError, this.#live.refusal);
    } else this.#start();
    let closed = false;
    return {
      close: () => {
        if (closed) return;
        closed = true;
        if (this.#listeners.size === 1) this.#stop(); // the last one hears 'closed'
        this.#listeners.delete(listener);
      },
    };
  }

  // ---- HTTP ----

  /**
   * @param {string} method
   * @param {string} path under /v1/users/{user}
   * @param {{ query?: Record<string, unknown>, body?: unknown }} opts
   */
  async #request(method, path, { query, body } = {}) {
    let url = `${this.#baseUrl}/v1/users/${encodeURIComponent(this.#user)}${path}`;
    if (query) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) params.set(k, String(v));
      const qs = params.toString();
      if (qs) url += `?${qs}`;
    }
    /** @type {Record<string, string>} */
    const headers = { Authorization: `Bearer ${this.#token}` };
    /** @type {RequestInit} */
    const init = { method, headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const fetchFn = this.#fetch;
    let res;
    let text;
    try {
      res = await fetchFn(url, init);
      text = await res.text();
    } catch (e) {
      throw new HeraldError(`network error: ${e instanceof Error ? e.message : e}`, {
        status: 0,
        code: 'network_error',
        cause: e,
      });
    }
    let json = null;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
    }
    if (!res.ok) throw HeraldError.fromResponse(res.status, json, text);
    if (!isObject(json)) {
      throw new HeraldError('herald answered something other than a JSON object', {
        status: res.status,
        code: 'invalid_response',
        body: text,
      });
    }
    return /** @type {any} */ (json);
  }

  // ---- state and listeners ----

  /** @param {(s: HeraldState) => HeraldState} fn */
  #update(fn) {
    const next = fn(this.#state);
    if (next === this.#state) return;
    this.#state = next;
    for (const l of [...this.#listeners]) call(l.onState, next);
  }

  /** @param {Status} status */
  #setStatus(status) {
    if (status === this.#status) return;
    this.#status = status;
    for (const l of [...this.#listeners]) call(l.onStatus, status);
  }

  /** @param {HeraldError} error */
  #emitError(error) {
    for (const l of [...this.#listeners]) call(l.onError, error);
  }

  // ---- live feed ----

  #start() {
    this.#live = {
      attempt: 0,
      socket: null,
      opened: false,
      heartbeat: null,
      reconnect: null,
      loaded: false,
      stopped: false,
      halted: false,
      refusal: null,
      pageQueued: null,
      pageTail: null,
    };
    this.#connect(this.#live);
  }

  #stop() {
    const live = this.#live;
    if (!live) return;
    live.stopped = true;
    this.#live = null;
    this.#clearTimers(live);
    const socket = live.socket;
    live.socket = null;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null;
      try {
        socket.close(1000);
      } catch {
        /* already closed */
      }
    }
    this.#setStatus('closed');
  }

  /** @param {Live} live */
  #clearTimers(live) {
    const clear = this.#clearTimeout;
    if (live.heartbeat != null) clear(live.heartbeat);
    if (live.reconnect != null) clear(live.reconnect);
    live.heartbeat = live.reconnect = null;
  }

  /** @param {Live} live */
  #connect(live) {
    if (live.stopped || live.halted) return;
    live.reconnect = null;
    live.opened = false;
    this.#setStatus('connecting');
    const wsUrl = String(this.#wsUrl);
    const url = `${wsUrl}${wsUrl.includes('?') ? '&' : '?'}token=${encodeURIComponent(this.#token ?? '')}`;
    /** @type {any} */
    let socket;
    try {
      socket = new this.#WebSocket(url);
    } catch (e) {
      this.#emitError(new HeraldError(`cannot open the live feed: ${e instanceof Error ? e.message : e}`, { code: 'connect_failed', cause: e }));
      this.#scheduleReconnect(live);
      return;
    }
    live.socket = socket;
    const current = () => !live.stopped && live.socket === socket;
    socket.onopen = () => {
      if (!current()) return;
      live.opened = true;
      this.#setStatus('open');
      this.#armHeartbeat(live, socket);
      this.#sync(live, socket);
    };
    socket.onmessage = (/** @type {{data: unknown}} */ event) => {
      if (current()) this.#receive(live, socket, event.data);
    };
    socket.onerror = () => {
      /* a close event follows */
    };
    socket.onclose = () => {
      if (!current()) return;
      live.socket = null;
      const clear = this.#clearTimeout;
      if (live.heartbeat != null) clear(live.heartbeat);
      live.heartbeat = null;
      if (live.opened) this.#scheduleReconnect(live);
      else this.#checkRefusal(live);
    };
  }

  /**
   * After a socket closed before opening: the browser cannot see the upgrade's status, so ask
   * `unread()` with the same token. 401/403: the token is refused, stop until setToken. Anything
   * else (success, network failure, 5xx): report `connect_failed` and reconnect with back-off.
   * @param {Live} live
   */
  async #checkRefusal(live) {
    this.#setStatus('reconnecting');
    const token = this.#token;
    /** @type {HeraldError | null} */
    let failure = null;
    try {
      await this.unread();
    } catch (e) {
      failure = toHeraldError(e);
    }
    if (live.stopped || live.halted || live.socket || live.reconnect != null) return;
    if (failure && (failure.status === 401 || failure.status === 403) && this.#token === token) {
      live.halted = true;
      live.attempt = 0;
      live.refusal = new HeraldError(
        `the live feed refused the token (HTTP ${failure.status}: ${failure.message}); call setToken with a fresh one`,
        { status: failure.status, code: 'unauthorized', body: failure.body, cause: failure },
      );
      this.#setStatus('closed');
      this.#emitError(live.refusal);
      return;
    }
    this.#emitError(
      new HeraldError('the live feed closed before opening (server unreachable or refusing)', {
        code: 'connect_failed',
        cause: failure ?? undefined,
      }),
    );
    this.#scheduleReconnect(live);
  }

  /** @param {Live} live */
  #scheduleReconnect(live) {
    if (live.stopped) return;
    const delay = backoffDelay(live.attempt, this.#backoff, this.#random);
    live.attempt += 1;
    this.#setStatus('reconnecting');
    const schedule = this.#setTimeout; // unbound, see the constructor
    live.reconnect = schedule(() => this.#connect(live), delay);
  }

  /** @param {Live} live @param {any} socket */
  #armHeartbeat(live, socket) {
    const schedule = this.#setTimeout;
    live.heartbeat = schedule(() => {
      if (live.stopped || live.socket !== socket) return;
      live.attempt = 0; // it stayed open
      try {
        socket.send(JSON.stringify({ action: 'ping' }));
      } catch {
        /* the close event will follow */
      }
      this.#armHeartbeat(live, socket);
    }, this.#heartbeatMs);
  }

  /**
   * Re-reads what frames may have been missed while disconnected: the counts and the newest
   * page of messages, on every open (the first and each reconnect).
   */
  async #sync(/** @type {Live} */ live, /** @type {any} */ socket) {
    try {
      await Promise.all([this.unread(), this.#rereadPage(live, socket)]);
    } catch (e) {
      if (!live.stopped) this.#emitError(toHeraldError(e));
    }
  }

  /**
   * Reads the newest page of messages and merges it (the server's flags win). Reads run one at
   * a time, in order; a read asked for while one is waiting to start joins it (it will see the
   * same server state), so a burst of truncated frames costs one or two requests. A page read
   * for a socket that is no longer the current one is dropped.
   * @param {Live} live
   * @param {any} socket
   * @returns {Promise<void>} rejects with the read's error
   */
  #rereadPage(live, socket) {
    if (live.pageQueued && live.pageQueued.socket === socket) return live.pageQueued.promise;
    const queued = {
      socket,
      promise: (live.pageTail ?? Promise.resolve())
        .catch(() => {}) // the previous read's failure was reported by its own caller
        .then(async () => {
          if (live.pageQueued === queued) live.pageQueued = null; // started: later asks queue anew
          if (live.stopped || live.socket !== socket) return;
          const page = await this.messages({ limit: FIRST_PAGE_LIMIT });
          if (live.stopped || live.socket !== socket) return;
          live.loaded = true;
          this.#update((s) => mergeMessages(s, page.messages));
        }),
    };
    live.pageQueued = queued;
    live.pageTail = queued.promise;
    return queued.promise;
  }

  /** @param {Live} live @param {any} socket @param {unknown} data */
  #receive(live, socket, data) {
    if (typeof data !== 'string') return;
    /** @type {any} */
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (!isObject(frame)) return;
    live.attempt = 0; // opened and heard from the server
    for (const l of [...this.#listeners]) call(l.onFrame, frame);
    if (frame.type === 'error') {
      const err = isObject(frame.error) ? frame.error : {};
      this.#emitError(
        new HeraldError(typeof err.message === 'string' ? err.message : 'error frame', {
          code: typeof err.code === 'string' ? err.code : 'error',
          field: typeof err.field === 'string' ? err.field : undefined,
          body: frame,
        }),
      );
      return;
    }
    this.#update((s) => applyFrame(s, frame));
    if (frame.type === 'update' && frame.truncated === true) {
      // its changes were dropped (too large for a frame): the counts are right, the list is not
      this.#rereadPage(live, socket).catch((e) => {
        if (!live.stopped && live.socket === socket) this.#emitError(toHeraldError(e));
      });
    }
  }
}

// ---- helpers ----

/** @param {unknown} v @returns {v is Record<string, any>} */
function isObject(v) {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** @param {unknown} v */
function isCount(v) {
  return typeof v === 'number' && Number.isFinite(v);
}

/** @param {unknown} m @returns {m is Message} */
function isMessage(m) {
  return isObject(m) && typeof m.id === 'string';
}

/** @param {any} c @returns {Counts} */
function countsOf(c) {
  /** @type {Record<string, number>} */
  const rooms = {};
  if (isObject(c.rooms)) {
    for (const [room, n] of Object.entries(c.rooms)) if (isCount(n) && n > 0) rooms[room] = n;
  }
  return { total: c.total, rooms };
}

/**
 * Whether a change of a stale frame still applies: new messages and single-message `seen`.
 * @param {unknown} change
 */
function appliesWhenStale(change) {
  return isObject(change) && (change.kind === 'message' || (change.kind === 'seen' && typeof change.id === 'string'));
}

/**
 * The flags that freshly replaced counts imply (see {@link applyUnread}).
 * @param {HeraldState} state its counts just replaced
 * @param {Unread} unread the counts' source, to tell whether `unseen` was given
 * @returns {HeraldState}
 */
function impliedFlags(state, unread) {
  const { rooms, unseen } = state.unread;
  let messages = updateWhere(state.messages, (m) => !hasCount(rooms, m.room_id), { read: true, seen: true });
  if (isObject(unread.unseen) && isCount(unread.unseen.total)) {
    messages = updateWhere(messages, (m) => !hasCount(unseen.rooms, m.room_id), { seen: true });
  }
  return messages === state.messages ? state : { ...state, messages };
}

/** @param {Record<string, number>} rooms @param {unknown} room whether that room counts more than 0 */
function hasCount(rooms, room) {
  return typeof room === 'string' && Object.hasOwn(rooms, room) && rooms[room] > 0;
}

/**
 * @param {Message[]} messages
 * @param {unknown} change
 * @returns {Message[]}
 */
function applyChange(messages, change) {
  if (!isObject(change)) return messages;
  switch (change.kind) {
    case 'message':
      return insertMessage(messages, change.message);
    case 'read':
      if (typeof change.room !== 'string') return messages;
      return updateWhere(messages, (m) => m.room_id === change.room, { read: true, seen: true });
    case 'seen':
      if (typeof change.id === 'string') return updateWhere(messages, (m) => m.id === change.id, { seen: true });
      if (typeof change.room === 'string') return updateWhere(messages, (m) => m.room_id === change.room, { seen: true });
      return messages;
    case 'archived':
      if (typeof change.id !== 'string' || typeof change.archived !== 'boolean') return messages;
      return updateWhere(messages, (m) => m.id === change.id, { archived: change.archived });
    default:
      return messages; // a kind from a newer server
  }
}

/** @param {Message[]} messages @param {unknown} message */
function insertMessage(messages, message) {
  if (!isMessage(message) || messages.some((m) => m.id === message.id)) return messages;
  let i = 0;
  while (i < messages.length && compareMessages(messages[i], message) <= 0) i++;
  return [...messages.slice(0, i), message, ...messages.slice(i)];
}

/**
 * @param {Message[]} messages
 * @param {(m: Message) => boolean} match
 * @param {Partial<Message>} flags
 */
function updateWhere(messages, match, flags) {
  let changed = false;
  const out = messages.map((m) => {
    if (!match(m)) return m;
    for (const [k, v] of Object.entries(flags)) {
      if (/** @type {any} */ (m)[k] !== v) {
        changed = true;
        return { ...m, ...flags };
      }
    }
    return m;
  });
  return changed ? out : messages;
}

/** @param {HeraldState} state @param {(m: Message) => boolean} match @param {Partial<Message>} flags */
function setFlags(state, match, flags) {
  const messages = updateWhere(state.messages, match, flags);
  return messages === state.messages ? state : { ...state, messages };
}

/** @param {unknown} e */
function toHeraldError(e) {
  return e instanceof HeraldError ? e : new HeraldError(e instanceof Error ? e.message : String(e), { cause: e });
}

/**
 * Calls a listener; one that throws must not break the feed.
 * @param {Function | undefined} fn
 * @param {unknown} arg
 */
function call(fn, arg) {
  if (typeof fn !== 'function') return;
  try {
    fn(arg);
  } catch (e) {
    if (typeof globalThis.reportError === 'function') globalThis.reportError(e);
    else console.error(e);
  }
}
