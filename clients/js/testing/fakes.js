// testing/fakes.js — test doubles for herald.js (a scripted fetch, a controllable WebSocket, a manual clock) and a DOM-less host for herald-inbox.js's element; kept out of test/ so node --test does not run it as a test file.

/** A fetch that answers from a route table and records every call. */
export class FakeFetch {
  constructor() {
    /** @type {{url: string, method: string, headers: Record<string,string>, body: string | undefined}[]} */
    this.calls = [];
    /** @type {Map<string, (call: any) => any>} */
    this.routes = new Map();
    this.fetch = this.fetch.bind(this);
  }

  /**
   * Answers `METHOD /path` (path without query) with status and JSON body (or a function of the call).
   * @param {string} key e.g. "GET /v1/users/alice/unread"
   */
  on(key, status, body) {
    this.routes.set(key, (call) => ({ status, body: typeof body === 'function' ? body(call) : body }));
    return this;
  }

  /** Calls whose path (without query) matches. */
  to(method, path) {
    return this.calls.filter((c) => c.method === method && new URL(c.url).pathname === path);
  }

  async fetch(url, init = {}) {
    if (this.failWith) throw this.failWith;
    const call = { url, method: init.method ?? 'GET', headers: { ...(init.headers ?? {}) }, body: init.body };
    this.calls.push(call);
    const key = `${call.method} ${new URL(url).pathname}`;
    const route = this.routes.get(key);
    if (!route) return new Response(JSON.stringify({ error: { code: 'not_found', message: key } }), { status: 404 });
    const { status, body } = route(call);
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    return new Response(text, { status, headers: { 'content-type': 'application/json' } });
  }
}

/** A fresh FakeWebSocket class with its own list of instances (one per test). */
export function fakeWebSocketClass() {
  return class extends FakeWebSocket {
    static instances = [];
  };
}

/** A WebSocket whose server side the test drives. */
export class FakeWebSocket {
  /** @type {FakeWebSocket[]} */
  static instances = [];
  static get last() {
    return this.instances.at(-1);
  }

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    /** @type {string[]} */
    this.sent = [];
    this.closedByClient = null;
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    /** @type {any} */ (this.constructor).instances.push(this);
  }

  send(data) {
    if (this.readyState !== 1) throw new Error('not open');
    this.sent.push(data);
  }

  close(code = 1000) {
    this.closedByClient = { code };
    this.readyState = 3;
  }

  // ---- the server side ----
  open() {
    this.readyState = 1;
    this.onopen?.({ type: 'open' });
  }

  receive(frame) {
    this.onmessage?.({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) });
  }

  serverClose(code = 1006) {
    this.readyState = 3;
    this.onerror?.({ type: 'error' });
    this.onclose?.({ code, wasClean: false });
  }

  /** The parsed frames the client sent. */
  get sentFrames() {
    return this.sent.map((s) => JSON.parse(s));
  }
}

/** A manual clock with injectable setTimeout/clearTimeout. */
export class FakeClock {
  constructor() {
    this.now = 0;
    this.nextId = 1;
    /** @type {Map<number, {at: number, fn: () => void, ms: number}>} */
    this.timers = new Map();
    this.setTimeout = (fn, ms) => {
      const id = this.nextId++;
      this.timers.set(id, { at: this.now + ms, fn, ms });
      return id;
    };
    this.clearTimeout = (id) => {
      this.timers.delete(id);
    };
  }

  /** The delays of pending timers, in creation order. */
  get pending() {
    return [...this.timers.values()].map((t) => t.ms);
  }

  /** Runs the timers due within `ms`, in time order. */
  advance(ms) {
    const end = this.now + ms;
    for (;;) {
      let next = null;
      for (const [id, t] of this.timers) if (t.at <= end && (!next || t.at < next[1].at)) next = [id, t];
      if (!next) break;
      this.timers.delete(next[0]);
      this.now = next[1].at;
      next[1].fn();
    }
    this.now = end;
  }
}

/** Lets pending promises (fake fetch answers) settle. */
export function flush() {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Freezes an object graph, to prove a function does not mutate its input. */
export function deepFreeze(o) {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/** A message with defaults. */
export function msg(id, created_at, extra = {}) {
  return {
    id,
    room_id: 'general',
    title: `title ${id}`,
    body: `body ${id}`,
    created_at,
    read: false,
    seen: false,
    archived: false,
    data: {},
    ...extra,
  };
}

/** A stand-in for the shadow DOM nodes herald-inbox.js touches (no markup is parsed). */
export class FakeNode {
  constructor() {
    this.hidden = false;
    this.textContent = '';
    this.title = '';
    this.disabled = false;
    /** @type {Record<string, string>} */
    this.attributes = {};
    this.firstChild = null;
    /** @type {FakeNode | null} */
    this.firstElementChild = null;
  }
  setAttribute(name, value) {
    this.attributes[name] = String(value);
  }
  getAttribute(name) {
    return this.attributes[name] ?? null;
  }
  addEventListener() {}
  focus() {}
  insertBefore() {
    throw new Error('FakeNode: list items need a DOM; give the element no messages');
  }
}

/**
 * Makes a subclass of the `<herald-inbox>` class that runs in node without a DOM: a fake shadow
 * root (`host.nodes[selector]`, each a FakeNode, the status one with a child), attributes that
 * call attributeChangedCallback like the DOM does, `isConnected` true, and the dispatched events
 * kept in `host.events`. Enough for an element with no messages listed.
 * @template {new () => any} T
 * @param {T} Element
 */
export function domlessElement(Element) {
  return class extends Element {
    attachShadow() {
      /** @type {Record<string, FakeNode>} */
      const nodes = {};
      this.nodes = nodes;
      return {
        innerHTML: '',
        querySelector: (sel) => {
          if (!nodes[sel]) {
            nodes[sel] = new FakeNode();
            if (sel === '.status') nodes[sel].firstElementChild = new FakeNode();
          }
          return nodes[sel];
        },
      };
    }
    get isConnected() {
      return true;
    }
    getAttribute(name) {
      return this.attrs?.[name] ?? null;
    }
    setAttribute(name, value) {
      this.attrs ??= {};
      const old = this.attrs[name] ?? null;
      this.attrs[name] = String(value);
      if (/** @type {any} */ (this.constructor).observedAttributes.includes(name)) {
        this.attributeChangedCallback(name, old, String(value));
      }
    }
    dispatchEvent(event) {
      (this.events ??= []).push(event);
      return true;
    }
  };
}
