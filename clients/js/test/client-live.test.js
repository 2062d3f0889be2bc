// client-live.test.js — HeraldClient.subscribe against a fake WebSocket, fake fetch and manual clock: connect, sync, frames, truncated frames, heartbeat, reconnects, refused tokens, close.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';

import { HeraldClient, HeraldError } from '../herald.js';
import { FakeClock, FakeFetch, fakeWebSocketClass, flush, msg } from '../testing/fakes.js';

const U = '/v1/users/alice';

function setup(options = {}) {
  const http = new FakeFetch();
  const clock = new FakeClock();
  const WS = fakeWebSocketClass();
  let version = 10;
  http
    .on(`GET ${U}/unread`, 200, () => ({ version, total: 2, rooms: { general: 2 }, unseen: { total: 1, rooms: { general: 1 } } }))
    .on(`GET ${U}/messages`, 200, { messages: [msg('02', '2024-05-01T10:02:00Z'), msg('01', '2024-05-01T10:01:00Z')], next_cursor: 'next' });
  const client = new HeraldClient({
    baseUrl: 'https://api.example.com',
    wsUrl: 'wss://api.example.com/live',
    token: 'ey.J/w+t=',
    user: 'alice',
    fetch: http.fetch,
    WebSocket: WS,
    heartbeatMs: 1000,
    backoff: { initialMs: 100, maxMs: 1000 },
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random: () => 0.5,
    ...options,
  });
  const log = { states: [], statuses: [], frames: [], errors: [] };
  const subscribe = () =>
    client.subscribe((s) => log.states.push(s), {
      onStatus: (s) => log.statuses.push(s),
      onFrame: (f) => log.frames.push(f),
      onError: (e) => log.errors.push(e),
    });
  return { client, http, clock, WS, log, subscribe, setVersion: (v) => (version = v) };
}

const update = (version, total, rooms, changes = []) => ({ type: 'update', version, total, rooms, unseen: { total, rooms }, changes });

describe('subscribe: connecting and syncing', () => {
  test('connects to wsUrl with the URL-encoded token in the query string', () => {
    const { WS, log, subscribe, client } = setup();
    subscribe();
    assert.equal(WS.instances.length, 1);
    assert.equal(WS.last.url, 'wss://api.example.com/live?token=ey.J%2Fw%2Bt%3D');
    assert.deepEqual(log.statuses, ['connecting']);
    assert.equal(client.status, 'connecting');
  });

  test('a wsUrl with a query string gets &token=', () => {
    const { WS, subscribe } = setup({ wsUrl: 'wss://x/live?v=2' });
    subscribe();
    assert.equal(WS.last.url, 'wss://x/live?v=2&token=ey.J%2Fw%2Bt%3D');
  });

  test('on open: status open, unread and the first 20 messages read and applied, onState called', async () => {
    const { WS, http, log, subscribe, client } = setup();
    subscribe();
    assert.equal(http.calls.length, 0, 'nothing before the socket opens');
    WS.last.open();
    await flush();
    assert.deepEqual(log.statuses, ['connecting', 'open']);
    assert.equal(http.to('GET', `${U}/unread`).length, 1);
    const lists = http.to('GET', `${U}/messages`);
    assert.equal(lists.length, 1);
    assert.equal(new URL(lists[0].url).search, '?limit=20');
    assert.equal(client.state.version, 10);
    assert.equal(client.state.unread.total, 2);
    assert.deepEqual(client.state.messages.map((m) => m.id), ['02', '01']);
    assert.ok(log.states.length >= 1);
    assert.equal(log.states.at(-1), client.state);
  });

  test('frames are applied and onState/onFrame called; pong and junk change nothing', async () => {
    const { WS, log, subscribe, client } = setup();
    subscribe();
    WS.last.open();
    await flush();
    const n = log.states.length;
    WS.last.receive(update(11, 3, { general: 3 }, [{ kind: 'message', message: msg('03', '2024-05-01T10:03:00Z') }]));
    assert.equal(log.states.length, n + 1);
    assert.equal(client.state.version, 11);
    assert.equal(client.state.unread.total, 3);
    assert.deepEqual(client.state.messages.map((m) => m.id), ['03', '02', '01']);
    assert.equal(log.frames.at(-1).version, 11);

    WS.last.receive({ type: 'pong' });
    WS.last.receive('not json {');
    WS.last.receive({ type: 'from-the-future', whatever: true });
    WS.last.receive(update(11, 0, {})); // same version, no changes
    assert.equal(log.states.length, n + 1, 'no state change');
    assert.deepEqual(log.frames.slice(-3).map((f) => f.type), ['pong', 'from-the-future', 'update']);
  });

  test('an error frame goes to onError as a HeraldError and the feed keeps working', async () => {
    const { WS, log, subscribe, client } = setup();
    subscribe();
    WS.last.open();
    await flush();
    WS.last.receive({ type: 'error', error: { code: 'unknown_action', message: 'what is that', field: 'action' } });
    assert.equal(log.errors.length, 1);
    assert.ok(log.errors[0] instanceof HeraldError);
    assert.deepEqual([log.errors[0].code, log.errors[0].field, log.errors[0].message], ['unknown_action', 'action', 'what is that']);
    WS.last.receive({ type: 'error' }); // malformed
    assert.equal(log.errors.length, 2);
    WS.last.receive(update(12, 0, {}));
    assert.equal(client.state.version, 12);
    assert.equal(client.status, 'open');
  });

  test('a sync answer older than a frame already applied does not replace the counts', async () => {
    const { WS, log, subscribe, client } = setup();
    subscribe();
    WS.last.open();
    WS.last.receive(update(13, 5, { general: 5 })); // arrives before the HTTP answers (version 10)
    await flush();
    assert.equal(client.state.version, 13);
    assert.equal(client.state.unread.total, 5);
    assert.deepEqual(client.state.messages.map((m) => m.id), ['02', '01'], 'messages still merged');
    assert.equal(log.errors.length, 0);
  });

  test('a throwing onState does not break the feed', async () => {
    const { WS, client } = setup();
    const errors = [];
    const original = console.error;
    console.error = (e) => errors.push(e);
    try {
      client.subscribe(() => {
        throw new Error('listener bug');
      });
      WS.last.open();
      await flush();
      WS.last.receive(update(11, 1, {}));
    } finally {
      console.error = original;
    }
    assert.equal(client.state.version, 11);
    assert.ok(errors.length >= 2 && errors.every((e) => e.message === 'listener bug'));
  });

  test('a failed sync is reported through onError', async () => {
    const { WS, http, log, subscribe } = setup();
    http.on(`GET ${U}/unread`, 401, { error: { code: 'unauthorized', message: 'expired' } });
    subscribe();
    WS.last.open();
    await flush();
    assert.equal(log.errors.length, 1);
    assert.equal(log.errors[0].status, 401);
    assert.equal(log.errors[0].code, 'unauthorized');
  });
});

describe('subscribe: heartbeat', () => {
  test('pings every heartbeatMs while open, and stops on close()', async () => {
    const { WS, clock, subscribe } = setup();
    const sub = subscribe();
    clock.advance(5000);
    assert.equal(WS.last.sent.length, 0, 'no ping before open');
    WS.last.open();
    await flush();
    clock.advance(999);
    assert.equal(WS.last.sent.length, 0);
    clock.advance(1);
    assert.deepEqual(WS.last.sentFrames, [{ action: 'ping' }]);
    clock.advance(2000);
    assert.deepEqual(WS.last.sentFrames, [{ action: 'ping' }, { action: 'ping' }, { action: 'ping' }]);
    sub.close();
    assert.equal(clock.timers.size, 0, 'timers cleared');
    clock.advance(5000);
    assert.equal(WS.last.sent.length, 3);
  });
});

describe('subscribe: reconnecting', () => {
  test('an unexpected close reconnects after the back-off delay and re-reads unread and the newest messages', async () => {
    const { WS, http, clock, log, subscribe, client, setVersion } = setup();
    subscribe();
    WS.last.open();
    await flush();
    WS.last.receive(update(11, 2, { general: 2 }));
    WS.last.serverClose();
    assert.equal(client.status, 'reconnecting');
    assert.deepEqual(clock.pending, [50], 'random 0.5 × initialMs 100 × 2^0');
    client.setToken('fresh token');
    clock.advance(49);
    assert.equal(WS.instances.length, 1);
    clock.advance(1);
    assert.equal(WS.instances.length, 2);
    assert.equal(WS.last.url, 'wss://api.example.com/live?token=fresh%20token', 'the new token rides the reconnect');
    setVersion(20); // counts changed while disconnected
    WS.last.open();
    await flush();
    assert.deepEqual(log.statuses, ['connecting', 'open', 'reconnecting', 'connecting', 'open']);
    assert.equal(http.to('GET', `${U}/unread`).length, 2, 'unread re-read on reconnect');
    assert.equal(http.to('GET', `${U}/unread`)[1].headers.Authorization, 'Bearer fresh token');
    assert.equal(http.to('GET', `${U}/messages`).length, 2, 'messages missed while away are read again');
    assert.equal(client.state.version, 20);
  });

  test('the delay grows while connections fail and resets once one opens and hears a frame', async () => {
    const { WS, clock, log, subscribe } = setup();
    subscribe();
    const delays = [];
    for (let i = 0; i < 6; i++) {
      WS.last.serverClose(); // never opened; unread answers 200, so the token is fine
      await flush();
      delays.push(clock.pending[0]);
      clock.advance(clock.pending[0]);
    }
    assert.deepEqual(delays, [50, 100, 200, 400, 500, 500], 'exponential, capped at maxMs × random');
    assert.equal(log.errors.length, 6);
    assert.ok(log.errors.every((e) => e instanceof HeraldError && e.code === 'connect_failed'));

    WS.last.open();
    await flush();
    WS.last.serverClose(); // opened but heard nothing: no reset
    assert.deepEqual(clock.pending, [500]);
    clock.advance(500);
    WS.last.open();
    await flush();
    WS.last.receive({ type: 'pong' });
    WS.last.serverClose();
    assert.deepEqual(clock.pending, [50], 'reset after a frame');
  });

  test('a connection that stayed open for a heartbeat resets the back-off too', async () => {
    const { WS, clock, subscribe } = setup();
    subscribe();
    for (let i = 0; i < 3; i++) {
      WS.last.serverClose();
      await flush();
      clock.advance(clock.pending[0]);
    }
    WS.last.open();
    await flush();
    clock.advance(1000); // heartbeat fires: it stayed open
    WS.last.serverClose();
    assert.deepEqual(clock.pending, [50]);
  });

  test('close() closes the socket and never reconnects', async () => {
    const { WS, clock, log, subscribe, client } = setup();
    const sub = subscribe();
    WS.last.open();
    await flush();
    const socket = WS.last;
    sub.close();
    assert.deepEqual(socket.closedByClient, { code: 1000 });
    assert.equal(client.status, 'closed');
    assert.equal(log.statuses.at(-1), 'closed');
    socket.serverClose(); // a late close event
    clock.advance(60_000);
    assert.equal(WS.instances.length, 1);
    assert.equal(clock.timers.size, 0);
    sub.close(); // twice is harmless
    assert.equal(log.statuses.filter((s) => s === 'closed').length, 1);
  });

  test('close() while waiting to reconnect cancels the reconnect', async () => {
    const { WS, clock, subscribe } = setup();
    const sub = subscribe();
    WS.last.serverClose();
    await flush();
    assert.equal(clock.timers.size, 1);
    sub.close();
    assert.equal(clock.timers.size, 0);
    clock.advance(10_000);
    assert.equal(WS.instances.length, 1);
  });

  test('frames from a replaced socket are ignored', async () => {
    const { WS, clock, subscribe, client } = setup();
    subscribe();
    const first = WS.last;
    first.open();
    await flush();
    first.serverClose();
    clock.advance(clock.pending[0]);
    first.receive(update(99, 9, { x: 9 }));
    assert.notEqual(client.state.version, 99);
  });
});

describe('subscribe: several subscribers', () => {
  test('share one socket; it closes with the last one', async () => {
    const { WS, client } = setup();
    const a = [];
    const b = [];
    const statusesB = [];
    const subA = client.subscribe((s) => a.push(s));
    WS.last.open();
    await flush();
    const subB = client.subscribe((s) => b.push(s), { onStatus: (s) => statusesB.push(s) });
    assert.equal(WS.instances.length, 1);
    assert.deepEqual(statusesB, ['open'], 'a late subscriber hears the current status');
    WS.last.receive(update(11, 0, {}));
    assert.equal(a.at(-1).version, 11);
    assert.equal(b.at(-1).version, 11);
    subA.close();
    assert.equal(WS.last.closedByClient, null);
    subB.close();
    assert.deepEqual(WS.last.closedByClient, { code: 1000 });
    assert.equal(statusesB.at(-1), 'closed');
  });

  test('without a WebSocket implementation subscribe says so', () => {
    const client = new HeraldClient({ user: 'u', token: 't', wsUrl: 'ws://x', WebSocket: null });
    assert.throws(() => client.subscribe(() => {}), /no WebSocket/);
    assert.throws(() => new HeraldClient({ user: 'u', token: 't', WebSocket: class {} }).subscribe(() => {}), /wsUrl/);
  });
});

describe('subscribe: refused tokens', () => {
  for (const status of [401, 403]) {
    test(`a socket closed before opening while unread answers ${status} stops reconnecting: status closed, one unauthorized error`, async () => {
      const { WS, http, clock, log, subscribe, client } = setup();
      http.on(`GET ${U}/unread`, status, { error: { code: 'unauthorized', message: 'token expired' } });
      subscribe();
      WS.last.serverClose(); // the upgrade was refused: no open event
      assert.equal(client.status, 'reconnecting', 'while the token is checked');
      await flush();
      const probes = http.to('GET', `${U}/unread`);
      assert.equal(probes.length, 1, 'the token is checked over HTTP');
      assert.equal(probes[0].headers.Authorization, 'Bearer ey.J/w+t=');
      assert.equal(client.status, 'closed');
      assert.deepEqual(log.statuses, ['connecting', 'reconnecting', 'closed']);
      assert.equal(log.errors.length, 1);
      assert.ok(log.errors[0] instanceof HeraldError);
      assert.deepEqual([log.errors[0].code, log.errors[0].status], ['unauthorized', status]);
      assert.equal(clock.timers.size, 0, 'no reconnect scheduled');
      clock.advance(600_000);
      assert.equal(WS.instances.length, 1, 'never reconnects on its own');
      assert.equal(http.calls.length, 1);
    });
  }

  test('a 5xx, a network failure or a successful unread keeps reconnecting with back-off (connect_failed)', async () => {
    for (const answer of ['500', 'network', '200']) {
      const { WS, http, clock, log, subscribe, client } = setup();
      if (answer === '500') http.on(`GET ${U}/unread`, 500, { error: { code: 'internal', message: 'boom' } });
      if (answer === 'network') http.failWith = new TypeError('fetch failed');
      subscribe();
      WS.last.serverClose();
      await flush();
      assert.equal(client.status, 'reconnecting', answer);
      assert.deepEqual(log.errors.map((e) => e.code), ['connect_failed'], answer);
      assert.deepEqual(clock.pending, [50], answer);
      clock.advance(50);
      assert.equal(WS.instances.length, 2, answer);
    }
  });

  test('setToken resumes a subscription stopped on a refused token at once, with the new token', async () => {
    const { WS, http, clock, log, subscribe, client } = setup();
    http.on(`GET ${U}/unread`, 403, { error: { code: 'unauthorized', message: 'token expired' } });
    subscribe();
    WS.last.serverClose();
    await flush();
    assert.equal(client.status, 'closed');
    http.on(`GET ${U}/unread`, 200, { version: 10, total: 2, rooms: { general: 2 } });
    client.setToken('fresh token');
    assert.equal(WS.instances.length, 2, 'connects at once, no back-off');
    assert.equal(WS.last.url, 'wss://api.example.com/live?token=fresh%20token');
    assert.equal(client.status, 'connecting');
    WS.last.open();
    await flush();
    assert.equal(client.status, 'open');
    assert.deepEqual(client.state.messages.map((m) => m.id), ['02', '01']);
    assert.deepEqual(log.statuses, ['connecting', 'reconnecting', 'closed', 'connecting', 'open']);
    client.setToken('another'); // while open: the socket is kept
    assert.equal(WS.instances.length, 2);
    assert.equal(WS.last.closedByClient, null);
    assert.equal(clock.timers.size, 1, 'only the heartbeat');
  });

  test('a subscriber joining a stopped subscription hears closed and the unauthorized error', async () => {
    const { WS, http, subscribe, client } = setup();
    http.on(`GET ${U}/unread`, 401, { error: { code: 'unauthorized', message: 'bad token' } });
    const first = subscribe();
    WS.last.serverClose();
    await flush();
    const statuses = [];
    const errors = [];
    const second = client.subscribe(() => {}, { onStatus: (s) => statuses.push(s), onError: (e) => errors.push(e) });
    assert.deepEqual(statuses, ['closed']);
    assert.deepEqual(errors.map((e) => [e.code, e.status]), [['unauthorized', 401]]);
    assert.equal(WS.instances.length, 1, 'joining does not retry');
    first.close();
    second.close();
    client.setToken('new'); // nothing to resume once everyone left
    assert.equal(WS.instances.length, 1);
  });

  test('close() while the token is checked ends everything; setToken meanwhile keeps an old token\'s refusal from stopping the feed', async () => {
    {
      const { WS, http, clock, log, subscribe, client } = setup();
      http.on(`GET ${U}/unread`, 403, { error: { code: 'unauthorized', message: 'no' } });
      const sub = subscribe();
      WS.last.serverClose();
      sub.close();
      await flush();
      assert.equal(client.status, 'closed');
      assert.equal(log.errors.length, 0);
      assert.equal(clock.timers.size, 0);
    }
    {
      const { WS, http, clock, log, subscribe, client } = setup();
      http.on(`GET ${U}/unread`, 403, { error: { code: 'unauthorized', message: 'no' } });
      subscribe();
      WS.last.serverClose();
      client.setToken('fresh'); // the check in flight used the old token
      await flush();
      assert.deepEqual(log.errors.map((e) => e.code), ['connect_failed']);
      assert.equal(client.status, 'reconnecting');
      clock.advance(clock.pending[0]);
      assert.equal(WS.last.url, 'wss://api.example.com/live?token=fresh');
    }
  });
});

describe('subscribe: truncated frames and re-read pages', () => {
  test('a truncated frame re-reads the newest page and merges it, the server\'s flags winning', async () => {
    const { WS, http, log, subscribe, client } = setup();
    subscribe();
    WS.last.open();
    await flush();
    assert.equal(http.to('GET', `${U}/messages`).length, 1);
    WS.last.receive(update(11, 3, { general: 3 })); // not truncated: no re-read
    await flush();
    assert.equal(http.to('GET', `${U}/messages`).length, 1);
    http.on(`GET ${U}/messages`, 200, {
      messages: [msg('03', '2024-05-01T10:03:00Z'), msg('02', '2024-05-01T10:02:00Z', { read: true, seen: true }), msg('01', '2024-05-01T10:01:00Z')],
      next_cursor: null,
    });
    WS.last.receive({ ...update(12, 2, { general: 2 }), truncated: true });
    assert.equal(client.state.version, 12, 'the counts apply at once');
    await flush();
    const lists = http.to('GET', `${U}/messages`);
    assert.equal(lists.length, 2);
    assert.equal(new URL(lists[1].url).search, '?limit=20');
    assert.deepEqual(client.state.messages.map((m) => [m.id, m.read]), [['03', false], ['02', true], ['01', false]]);
    assert.equal(log.errors.length, 0);
  });

  test('a burst of truncated frames costs one read; one arriving during a read queues one more, after it', async () => {
    const gates = [];
    let holding = false;
    let env;
    const fetch = async (url, init) => {
      if (holding && new URL(url).pathname === `${U}/messages`) await new Promise((resolve) => gates.push(resolve));
      return env.http.fetch(url, init);
    };
    env = setup({ fetch });
    const { WS, http, subscribe } = env;
    subscribe();
    WS.last.open();
    await flush();
    holding = true;
    const truncated = (v) => ({ ...update(v, 2, { general: 2 }), truncated: true });
    WS.last.receive(truncated(11));
    WS.last.receive(truncated(12));
    WS.last.receive(truncated(13));
    await flush();
    assert.equal(gates.length, 1, 'one read for the burst');
    WS.last.receive(truncated(14)); // its changes may be missing from the read in flight
    WS.last.receive(truncated(15));
    await flush();
    assert.equal(gates.length, 1, 'the next read waits for the one in flight');
    gates[0]();
    await flush();
    await flush();
    assert.equal(gates.length, 2, 'then one more read');
    gates[1]();
    await flush();
    await flush();
    assert.equal(gates.length, 2);
    assert.equal(http.to('GET', `${U}/messages`).length, 3, 'the sync and two re-reads');
  });

  test('the re-read after a reconnect heals a wrong flag', async () => {
    const { WS, http, clock, subscribe, client, setVersion } = setup();
    subscribe();
    WS.last.open();
    await flush();
    WS.last.receive(update(11, 2, { general: 2 }, [{ kind: 'read', room: 'general' }])); // a wrong mark
    assert.deepEqual(client.state.messages.map((m) => m.read), [true, true]);
    WS.last.serverClose();
    clock.advance(clock.pending[0]);
    setVersion(12);
    http.on(`GET ${U}/messages`, 200, {
      messages: [msg('02', '2024-05-01T10:02:00Z', { read: true, seen: true, archived: true }), msg('01', '2024-05-01T10:01:00Z')],
      next_cursor: null,
    });
    WS.last.open();
    await flush();
    assert.deepEqual(client.state.messages.map((m) => [m.id, m.read, m.seen, m.archived]), [
      ['02', true, true, true],
      ['01', false, false, false],
    ]);
  });
});
