// inbox.test.js — tests of herald-inbox.js's DOM-free logic (inboxView, relativeTime, defaultWsUrl), and of the element on a DOM-less host (a refused token, a new token); the module must also import in node.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';

import { applyFrame, HeraldClient, initialState } from '../herald.js';
import { defaultWsUrl, HeraldInbox, inboxView, relativeTime } from '../herald-inbox.js';
import { domlessElement, FakeClock, FakeFetch, fakeWebSocketClass, flush, msg } from '../testing/fakes.js';

const NOW = Date.parse('2024-05-01T12:00:00Z');

function state() {
  return {
    version: 4,
    unread: { total: 3, rooms: { general: 2, billing: 1 }, unseen: { total: 1, rooms: { general: 1 } } },
    messages: [
      msg('03', '2024-05-01T11:59:30Z', { title: 'Deploy finished', body: 'main is live' }),
      msg('02', '2024-05-01T11:00:00Z', { room_id: 'billing', archived: true }),
      msg('01', '2024-05-01T09:30:00Z', { read: true, seen: true }),
    ],
  };
}

describe('inboxView', () => {
  test('the badge shows the unread total by default, the unseen total with badge="unseen"', () => {
    assert.equal(inboxView(state(), { now: NOW }).count, 3);
    assert.equal(inboxView(state(), { badge: 'unseen', now: NOW }).count, 1);
    assert.equal(inboxView(state(), { badge: 'unread', now: NOW }).badgeHidden, false);
  });

  test('the badge is hidden at 0', () => {
    const view = inboxView(initialState(), { now: NOW });
    assert.equal(view.count, 0);
    assert.equal(view.badgeHidden, true);
    assert.equal(view.empty, true);
  });

  test('items: archived left out, newest first, read/unread class, room and relative time', () => {
    const view = inboxView(state(), { now: NOW, status: 'open' });
    assert.equal(view.status, 'open');
    assert.deepEqual(
      view.items.map((i) => [i.id, i.room, i.className, i.time]),
      [
        ['03', 'general', 'unread', 'now'],
        ['01', 'general', 'read', '2h'],
      ],
    );
    assert.equal(view.items[0].title, 'Deploy finished');
    assert.equal(view.items[0].body, 'main is live');
    assert.equal(view.empty, false);
  });

  test('follows frames: a read frame turns items read and the badge to the new total', () => {
    const next = applyFrame(state(), {
      type: 'update',
      version: 5,
      total: 1,
      rooms: { billing: 1 },
      unseen: { total: 0, rooms: {} },
      changes: [{ kind: 'read', room: 'general' }],
    });
    const view = inboxView(next, { now: NOW });
    assert.equal(view.count, 1);
    assert.deepEqual(view.items.map((i) => i.className), ['read', 'read']);
    assert.equal(inboxView(next, { badge: 'unseen', now: NOW }).badgeHidden, true);
  });
});

describe('inboxView: status', () => {
  test('the status text follows the connection; a refused token shows as signed out, with a notice', () => {
    const text = (status) => inboxView(initialState(), { status, now: NOW }).statusText;
    assert.deepEqual(['open', 'connecting', 'reconnecting', 'closed'].map(text), ['live', 'connecting…', 'reconnecting…', 'offline']);
    const normal = inboxView(initialState(), { status: 'closed', now: NOW });
    assert.deepEqual([normal.signedOut, normal.indicator, normal.notice], [false, 'closed', null]);
    const out = inboxView(initialState(), { status: 'closed', unauthorized: true, now: NOW });
    assert.deepEqual([out.status, out.signedOut, out.indicator, out.statusText], ['closed', true, 'unauthorized', 'signed out']);
    assert.match(out.notice, /signed out/i);
  });
});

describe('<herald-inbox> on a DOM-less host', () => {
  const U = '/v1/users/alice';

  function mount() {
    const http = new FakeFetch();
    const clock = new FakeClock();
    const WS = fakeWebSocketClass();
    http
      .on(`GET ${U}/unread`, 403, { error: { code: 'unauthorized', message: 'token expired' } })
      .on(`GET ${U}/messages`, 200, { messages: [], next_cursor: null });
    const client = new HeraldClient({
      wsUrl: 'wss://x/live',
      baseUrl: 'https://x',
      user: 'alice',
      token: 'old',
      fetch: http.fetch,
      WebSocket: WS,
      setTimeout: clock.setTimeout,
      clearTimeout: clock.clearTimeout,
      random: () => 0.5,
    });
    const Inbox = domlessElement(HeraldInbox);
    const el = new Inbox();
    return { el, client, http, clock, WS };
  }

  test('a refused token shows as signed out (dot, text, notice, herald-error) and a new token attribute resumes the feed', async () => {
    const { el, client, http, clock, WS } = mount();
    el.client = client;
    await flush();
    assert.equal(WS.instances.length, 1);
    WS.last.serverClose(); // the upgrade was refused
    await flush();
    const status = el.nodes['.status'];
    const error = el.nodes['.error'];
    assert.equal(el.status, 'closed');
    assert.equal(el.getAttribute('data-status'), 'unauthorized');
    assert.equal(status.getAttribute('data-status'), 'unauthorized');
    assert.equal(status.firstElementChild.textContent, 'signed out');
    assert.equal(el.nodes['.live'].textContent, 'signed out');
    assert.equal(error.hidden, false);
    assert.match(error.textContent, /signed out/i);
    const errors = el.events.filter((e) => e.type === 'herald-error');
    assert.deepEqual(errors.map((e) => [e.detail.code, e.detail.status]), [['unauthorized', 403]]);
    clock.advance(600_000);
    assert.equal(WS.instances.length, 1, 'no retries while signed out');

    http.on(`GET ${U}/unread`, 200, { version: 3, total: 0, rooms: {} });
    el.setAttribute('token', 'new');
    assert.equal(WS.instances.length, 2, 'the client connects again at once');
    assert.equal(WS.last.url, 'wss://x/live?token=new');
    assert.equal(el.getAttribute('data-status'), 'connecting');
    assert.equal(error.hidden, true, 'the notice goes once it connects again');
    WS.last.open();
    await flush();
    assert.equal(el.status, 'open');
    assert.equal(el.getAttribute('data-status'), 'open');
    assert.equal(status.firstElementChild.textContent, 'open');
    assert.equal(el.nodes['.live'].textContent, 'live');
    assert.equal(WS.instances.length, 2, 'the token change did not restart the feed on another socket');
    assert.equal(http.to('GET', `${U}/unread`).at(-1).headers.Authorization, 'Bearer new');
  });

  test('other errors keep the error line and do not sign out', async () => {
    const { el, client, http, WS } = mount();
    http.on(`GET ${U}/unread`, 200, { version: 3, total: 0, rooms: {} });
    el.client = client;
    await flush();
    WS.last.open();
    await flush();
    http.on(`POST ${U}/read-all`, 401, { error: { code: 'unauthorized', message: 'expired' } });
    el._act(client.markAllRead()); // what the Mark all read button does
    await flush();
    assert.equal(el.getAttribute('data-status'), 'open', 'an HTTP 401 while the feed is open is an error, not a sign-out');
    assert.equal(el.nodes['.error'].textContent, 'expired');
  });
});

describe('relativeTime', () => {
  test('now, minutes, hours, days, then a date', () => {
    assert.equal(relativeTime('2024-05-01T11:59:10Z', NOW), 'now');
    assert.equal(relativeTime('2024-05-01T12:00:30Z', NOW), 'now', 'a clock slightly behind');
    assert.equal(relativeTime('2024-05-01T11:55:00Z', NOW), '5m');
    assert.equal(relativeTime('2024-05-01T09:00:00Z', NOW), '3h');
    assert.equal(relativeTime('2024-04-29T12:00:00Z', NOW), '2d');
    const old = relativeTime('2024-03-04T12:00:00Z', NOW);
    assert.match(old, /4/);
    assert.doesNotMatch(old, /^\d+[mhd]$/);
    assert.equal(relativeTime('not a date', NOW), '');
  });
});

describe('defaultWsUrl', () => {
  test('ws for http, wss for https, same host, /live', () => {
    assert.equal(defaultWsUrl({ protocol: 'http:', host: 'localhost:3000' }), 'ws://localhost:3000/live');
    assert.equal(defaultWsUrl({ protocol: 'https:', host: 'app.example.com' }), 'wss://app.example.com/live');
  });
});

describe('herald-inbox.js in node', () => {
  test('imports without a DOM and observes the documented attributes', () => {
    assert.deepEqual(HeraldInbox.observedAttributes, ['api', 'ws', 'user', 'token', 'badge']);
    assert.equal(globalThis.customElements, undefined, 'nothing defined without a DOM');
  });
});
