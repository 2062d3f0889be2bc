// client-http.test.js — HeraldClient's HTTP methods against a fake fetch: URLs, methods, headers, bodies, errors, state updates.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';

import { HeraldClient, HeraldError } from '../herald.js';
import { FakeClock, FakeFetch, fakeWebSocketClass, flush, msg } from '../testing/fakes.js';

const BASE = 'https://api.example.com';
const U = '/v1/users/alice';

function setup(options = {}) {
  const http = new FakeFetch();
  const clock = new FakeClock();
  const WS = fakeWebSocketClass();
  const client = new HeraldClient({
    baseUrl: BASE,
    wsUrl: 'wss://live.example.com/live',
    token: 'tok-1',
    user: 'alice',
    fetch: http.fetch,
    WebSocket: WS,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random: () => 0.5,
    ...options,
  });
  return { client, http, clock, WS };
}

/** A client subscribed and synced with three messages at version 10. */
async function seededClient() {
  const env = setup();
  env.http
    .on('GET /v1/users/alice/unread', 200, { version: 10, total: 3, rooms: { general: 2, billing: 1 }, unseen: { total: 3, rooms: { general: 2, billing: 1 } } })
    .on('GET /v1/users/alice/messages', 200, {
      messages: [
        msg('03', '2024-05-01T10:03:00Z'),
        msg('02', '2024-05-01T10:02:00Z', { room_id: 'billing' }),
        msg('01', '2024-05-01T10:01:00Z'),
      ],
      next_cursor: null,
    });
  const states = [];
  env.sub = env.client.subscribe((s) => states.push(s));
  env.states = states;
  env.WS.last.open();
  await flush();
  assert.equal(env.client.state.messages.length, 3);
  return env;
}

const headerNames = (call) => Object.keys(call.headers).map((h) => h.toLowerCase()).sort();

describe('HeraldClient HTTP', () => {
  test('unread: GET with the bearer token, no body, no Content-Type; applied to the state', async () => {
    const { client, http } = setup();
    http.on(`GET ${U}/unread`, 200, { version: 12, total: 3, rooms: { general: 2, billing: 1 }, unseen: { total: 2, rooms: { general: 2 } } });
    const answer = await client.unread();
    assert.equal(answer.total, 3);
    assert.equal(http.calls.length, 1);
    const [call] = http.calls;
    assert.equal(call.url, `${BASE}${U}/unread`);
    assert.equal(call.method, 'GET');
    assert.equal(call.headers.Authorization, 'Bearer tok-1');
    assert.deepEqual(headerNames(call), ['authorization']);
    assert.equal(call.body, undefined);
    assert.equal(client.state.version, 12);
    assert.deepEqual(client.state.unread.unseen, { total: 2, rooms: { general: 2 } });
  });

  test('the user and room are URL-encoded; a trailing slash on baseUrl is dropped', async () => {
    const { client, http } = setup({ user: 'a b/c?d', baseUrl: `${BASE}/` });
    http.on('POST /v1/users/a%20b%2Fc%3Fd/rooms/r%2F1%20x/read', 200, { total: 0, rooms: {} });
    await client.markRoomRead('r/1 x');
    assert.equal(http.calls[0].url, `${BASE}/v1/users/a%20b%2Fc%3Fd/rooms/r%2F1%20x/read`);
  });

  test('messages: query parameters, only those given; archived as true/false', async () => {
    const { client, http } = setup();
    http.on(`GET ${U}/messages`, 200, { messages: [msg('1', '2024-01-01T00:00:00Z')], next_cursor: 'c2' });
    const page = await client.messages({ room: 'general', limit: 5, cursor: 'c1', archived: false });
    assert.equal(page.next_cursor, 'c2');
    assert.equal(page.messages[0].id, '1');
    const url = new URL(http.calls[0].url);
    assert.deepEqual(Object.fromEntries(url.searchParams), { room: 'general', limit: '5', cursor: 'c1', archived: 'false' });

    await client.messages({ archived: true });
    assert.equal(new URL(http.calls[1].url).search, '?archived=true');
    await client.messages();
    assert.equal(http.calls[2].url, `${BASE}${U}/messages`);
    assert.equal(client.state.messages.length, 0, 'messages() does not change the state');
  });

  test('messages: next_cursor defaults to null', async () => {
    const { client, http } = setup();
    http.on(`GET ${U}/messages`, 200, { messages: [] });
    assert.deepEqual(await client.messages({ limit: 1 }), { messages: [], next_cursor: null });
  });

  test('read-all, seen-all and room read are bodiless POSTs', async () => {
    const { client, http } = setup();
    http
      .on(`POST ${U}/read-all`, 200, { total: 0, rooms: {} })
      .on(`POST ${U}/seen-all`, 200, { total: 2, rooms: { a: 2 }, unseen: { total: 0, rooms: {} } })
      .on(`POST ${U}/rooms/general/read`, 200, { total: 0, rooms: {} });
    await client.markAllRead();
    await client.markAllSeen();
    await client.markRoomRead('general');
    assert.deepEqual(http.calls.map((c) => `${c.method} ${new URL(c.url).pathname}`), [
      `POST ${U}/read-all`,
      `POST ${U}/seen-all`,
      `POST ${U}/rooms/general/read`,
    ]);
    for (const call of http.calls) {
      assert.equal(call.body, undefined);
      assert.deepEqual(headerNames(call), ['authorization']);
    }
  });

  test('markSeen, archive and unarchive POST {"ids": [...]} as JSON', async () => {
    const { client, http } = setup();
    http
      .on(`POST ${U}/messages/seen`, 200, { total: 1, rooms: {}, not_found: ['zz'] })
      .on(`POST ${U}/messages/archive`, 200, { archived: ['a'], not_found: [] })
      .on(`POST ${U}/messages/unarchive`, 200, { unarchived: ['a'], not_found: [] });
    const seen = await client.markSeen(['a', 'zz']);
    assert.deepEqual(seen.not_found, ['zz']);
    assert.deepEqual(await client.archive(['a']), { archived: ['a'], not_found: [] });
    assert.deepEqual(await client.unarchive(['a']), { unarchived: ['a'], not_found: [] });
    assert.deepEqual(http.calls.map((c) => [new URL(c.url).pathname, c.method, JSON.parse(c.body)]), [
      [`${U}/messages/seen`, 'POST', { ids: ['a', 'zz'] }],
      [`${U}/messages/archive`, 'POST', { ids: ['a'] }],
      [`${U}/messages/unarchive`, 'POST', { ids: ['a'] }],
    ]);
    for (const call of http.calls) {
      assert.equal(call.headers['Content-Type'], 'application/json');
      assert.equal(call.headers.Authorization, 'Bearer tok-1');
    }
  });

  test('a herald error answer throws HeraldError with status, code, field and message', async () => {
    const { client, http } = setup();
    http.on(`POST ${U}/messages/seen`, 400, { error: { code: 'invalid_value', message: 'ids: 1 to 100', field: 'ids' } });
    await assert.rejects(client.markSeen([]), (e) => {
      assert.ok(e instanceof HeraldError);
      assert.deepEqual([e.status, e.code, e.field, e.message], [400, 'invalid_value', 'ids', 'ids: 1 to 100']);
      return true;
    });
    http.on(`GET ${U}/unread`, 401, { error: { code: 'unauthorized', message: 'bad token' } });
    await assert.rejects(client.unread(), { name: 'HeraldError', status: 401, code: 'unauthorized', field: undefined });
    assert.equal(client.state.version, null, 'an error changes nothing');
  });

  test('a non-JSON error, a non-JSON success and a network failure are HeraldErrors too', async () => {
    const { client, http } = setup();
    http.on(`GET ${U}/unread`, 502, '<html>Bad Gateway</html>');
    await assert.rejects(client.unread(), { status: 502, code: 'http_error', message: '<html>Bad Gateway</html>' });
    http.on(`GET ${U}/unread`, 200, 'not json');
    await assert.rejects(client.unread(), { status: 200, code: 'invalid_response' });
    http.failWith = new TypeError('fetch failed');
    await assert.rejects(client.unread(), (e) => e instanceof HeraldError && e.status === 0 && e.code === 'network_error' && e.cause instanceof TypeError);
  });

  test('setToken is used by the next request', async () => {
    const { client, http } = setup();
    http.on(`GET ${U}/unread`, 200, { total: 0, rooms: {} });
    await client.unread();
    client.setToken('tok-2');
    await client.unread();
    assert.deepEqual(http.calls.map((c) => c.headers.Authorization), ['Bearer tok-1', 'Bearer tok-2']);
  });

  test('fetch is called unbound (browsers refuse window.fetch called on another object)', async () => {
    const seenThis = [];
    const { client } = setup({
      fetch: function (url) {
        seenThis.push(this);
        return Promise.resolve(new Response('{"total":0,"rooms":{}}', { status: 200 }));
      },
    });
    await client.unread();
    assert.deepEqual(seenThis, [undefined]);
  });

  test('a user is required', () => {
    assert.throws(() => new HeraldClient({ token: 't' }), TypeError);
  });
});

describe('HeraldClient mutations update the state at once', () => {
  test('markRoomRead: that room read and seen, counts from the answer', async () => {
    const { client, http, states } = await seededClient();
    http.on(`POST ${U}/rooms/general/read`, 200, { version: 11, total: 1, rooms: { billing: 1 }, unseen: { total: 1, rooms: { billing: 1 } } });
    const before = states.length;
    await client.markRoomRead('general');
    const s = client.state;
    assert.equal(s.version, 11);
    assert.deepEqual(s.unread.rooms, { billing: 1 });
    assert.deepEqual(s.messages.map((m) => [m.id, m.read, m.seen]), [
      ['03', true, true],
      ['02', false, false],
      ['01', true, true],
    ]);
    assert.equal(states.length, before + 1, 'one onState for the mutation');
    assert.equal(states.at(-1), s);
  });

  test('an answer older than the held version leaves the counts, the local change still applies', async () => {
    const { client, http } = await seededClient();
    http.on(`POST ${U}/read-all`, 200, { version: 9, total: 0, rooms: {} });
    await client.markAllRead();
    assert.equal(client.state.version, 10);
    assert.equal(client.state.unread.total, 3);
    assert.ok(client.state.messages.every((m) => m.read && m.seen));
  });

  test('markAllSeen: every message seen, none read', async () => {
    const { client, http } = await seededClient();
    http.on(`POST ${U}/seen-all`, 200, { version: 11, total: 3, rooms: { general: 2, billing: 1 }, unseen: { total: 0, rooms: {} } });
    await client.markAllSeen();
    assert.ok(client.state.messages.every((m) => m.seen && !m.read));
    assert.equal(client.state.unread.unseen.total, 0);
    assert.equal(client.state.unread.total, 3);
  });

  test('markSeen: the ids found become seen', async () => {
    const { client, http } = await seededClient();
    http.on(`POST ${U}/messages/seen`, 200, { version: 11, total: 3, rooms: { general: 2, billing: 1 }, unseen: { total: 2, rooms: { general: 1, billing: 1 } }, not_found: ['02'] });
    await client.markSeen(['01', '02']);
    assert.deepEqual(client.state.messages.map((m) => m.seen), [false, false, true]);
    assert.equal(client.state.unread.unseen.total, 2);
  });

  test('archive and unarchive flip the flag of the ids the answer names', async () => {
    const { client, http } = await seededClient();
    http
      .on(`POST ${U}/messages/archive`, 200, { archived: ['03'], not_found: ['nope'] })
      .on(`POST ${U}/messages/unarchive`, 200, { unarchived: ['03'], not_found: [] });
    await client.archive(['03', 'nope']);
    assert.deepEqual(client.state.messages.map((m) => m.archived), [true, false, false]);
    await client.unarchive(['03']);
    assert.deepEqual(client.state.messages.map((m) => m.archived), [false, false, false]);
  });
});
