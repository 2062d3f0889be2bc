// herald.test.js — unit tests of herald.js's pure functions: applyUnread, applyFrame (version rule, stale frames, flags implied by counts), mergeMessages, backoffDelay, HeraldError.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';

import {
  applyFrame,
  applyUnread,
  backoffDelay,
  compareMessages,
  HeraldError,
  initialState,
  mergeMessages,
} from '../herald.js';
import { deepFreeze, msg } from '../testing/fakes.js';

const counts = (total, rooms, unseenTotal = total, unseenRooms = rooms) => ({
  total,
  rooms,
  unseen: { total: unseenTotal, rooms: unseenRooms },
});

const update = (version, total, rooms, changes = [], unseen) => ({
  type: 'update',
  version,
  total,
  rooms,
  unseen: unseen ?? { total, rooms },
  changes,
});

/** A state at version 10 holding three messages. */
function seeded() {
  return deepFreeze({
    version: 10,
    unread: counts(3, { general: 2, billing: 1 }),
    messages: [
      msg('03', '2024-05-01T10:03:00Z'),
      msg('02', '2024-05-01T10:02:00Z', { room_id: 'billing' }),
      msg('01', '2024-05-01T10:01:00Z'),
    ],
  });
}

describe('applyUnread', () => {
  test('an Unread without version always replaces the counts and keeps the held version', () => {
    const state = seeded();
    const next = applyUnread(state, { total: 1, rooms: { billing: 1 } });
    assert.equal(next.version, 10);
    assert.deepEqual(next.unread, counts(1, { billing: 1 }));
    // even counts "older" than what is held: there is no version to compare
    const again = applyUnread(next, { total: 7, rooms: { general: 7 }, unseen: { total: 2, rooms: { general: 2 } } });
    assert.equal(again.version, 10);
    assert.deepEqual(again.unread, counts(7, { general: 7 }, 2, { general: 2 }));
  });

  test('a versioned Unread replaces only when newer', () => {
    const state = seeded();
    assert.equal(applyUnread(state, { version: 9, total: 0, rooms: {} }), state);
    assert.equal(applyUnread(state, { version: 10, total: 0, rooms: {} }), state);
    const next = applyUnread(state, { version: 11, total: 2, rooms: { general: 1, billing: 1 }, unseen: { total: 2, rooms: { general: 1, billing: 1 } } });
    assert.equal(next.version, 11);
    assert.deepEqual(next.unread, counts(2, { general: 1, billing: 1 }));
    assert.deepEqual(next.messages, state.messages);
  });

  test('the first versioned Unread replaces the initial (versionless) state', () => {
    const next = applyUnread(initialState(), { version: 1, total: 2, rooms: { a: 2 }, unseen: { total: 1, rooms: { a: 1 } } });
    assert.equal(next.version, 1);
    assert.deepEqual(next.unread, counts(2, { a: 2 }, 1, { a: 1 }));
  });

  test('without unseen (older servers) unseen counts equal the unread ones', () => {
    const next = applyUnread(initialState(), { total: 3, rooms: { general: 2, billing: 1 } });
    assert.deepEqual(next.unread.unseen, { total: 3, rooms: { general: 2, billing: 1 } });
    assert.notEqual(next.unread.unseen.rooms, next.unread.rooms);
  });

  test('rooms at zero are dropped, garbage is ignored', () => {
    const next = applyUnread(initialState(), { total: 1, rooms: { a: 1, b: 0, c: 'x' } });
    assert.deepEqual(next.unread.rooms, { a: 1 });
    const state = seeded();
    assert.equal(applyUnread(state, null), state);
    assert.equal(applyUnread(state, { rooms: {} }), state);
    assert.equal(applyUnread(state, { total: '3', rooms: {} }), state);
  });
});

describe('applyFrame: counts and the version rule', () => {
  test('a newer frame replaces the counts and the version', () => {
    const next = applyFrame(seeded(), update(11, 1, { billing: 1 }, [], { total: 0, rooms: {} }));
    assert.equal(next.version, 11);
    assert.deepEqual(next.unread, counts(1, { billing: 1 }, 0, {}));
  });

  test('an older or equal frame does not replace the counts', () => {
    const state = seeded();
    for (const v of [3, 9, 10]) {
      const next = applyFrame(state, update(v, 0, {}));
      assert.equal(next, state, `version ${v}`);
      assert.equal(next.version, 10);
      assert.equal(next.unread.total, 3);
    }
  });


  test('non-update frames and junk are ignored, returning the same state', () => {
    const state = seeded();
    for (const frame of [
      { type: 'pong' },
      { type: 'error', error: { code: 'unknown_action', message: 'no' } },
      { type: 'hello-from-the-future', version: 99, total: 0, rooms: {} },
      null,
      'update',
      [],
      42,
    ]) {
      assert.equal(applyFrame(state, frame), state, JSON.stringify(frame));
    }
  });

  test('applyFrame does not mutate its input', () => {
    const state = seeded(); // deep-frozen: a mutation would throw in strict mode
    const frame = deepFreeze(update(12, 0, {}, [{ kind: 'read', room: 'general' }, { kind: 'archived', id: '02', room: 'billing', archived: true }]));
    const next = applyFrame(state, frame);
    assert.notEqual(next, state);
    assert.equal(state.messages[0].read, false);
    assert.equal(next.messages[0].read, true);
  });
});

describe('applyFrame: changes', () => {
  test('a new message is inserted newest first, by created_at then id descending', () => {
    let state = deepFreeze(initialState());
    const arrivals = [
      msg('B', '2024-05-01T10:00:00Z'),
      msg('D', '2024-05-01T12:00:00Z'),
      msg('A', '2024-05-01T10:00:00Z'), // tie with B: id descending puts B first
      msg('C', '2024-05-01T10:00:00.000+00:00'), // the same instant, written differently
      msg('E', '2024-05-01T09:00:00Z'),
      msg('F', '2024-05-01T13:00:00+02:00'), // 11:00Z
    ];
    for (const m of arrivals) state = applyFrame(state, update(undefined, 0, {}, [{ kind: 'message', message: m }]));
    assert.deepEqual(state.messages.map((m) => m.id), ['D', 'F', 'C', 'B', 'A', 'E']);
  });

  test('a message already held is not added twice', () => {
    const state = seeded();
    const dup = msg('02', '2024-05-01T10:02:00Z', { room_id: 'billing', title: 'changed' });
    const next = applyFrame(state, update(9, 0, {}, [{ kind: 'message', message: dup }, { kind: 'message', message: dup }]));
    assert.equal(next.messages.length, 3);
    assert.equal(next.messages.filter((m) => m.id === '02').length, 1);
    assert.equal(next, state, 'nothing changed');
    // and twice within one frame
    const fresh = msg('09', '2024-05-01T11:00:00Z');
    const twice = applyFrame(state, update(9, 0, {}, [{ kind: 'message', message: fresh }, { kind: 'message', message: fresh }]));
    assert.deepEqual(twice.messages.map((m) => m.id), ['09', '03', '02', '01']);
  });

  test('read: the room\'s messages become read and seen, other rooms untouched', () => {
    const next = applyFrame(seeded(), update(11, 1, { billing: 1 }, [{ kind: 'read', room: 'general' }]));
    const by = Object.fromEntries(next.messages.map((m) => [m.id, m]));
    assert.deepEqual([by['01'].read, by['01'].seen, by['03'].read, by['03'].seen], [true, true, true, true]);
    assert.deepEqual([by['02'].read, by['02'].seen], [false, false]);
  });

  test('seen by room marks the room seen (not read); seen by id marks one message', () => {
    const rooms = { general: 2, billing: 1 };
    const byRoom = applyFrame(seeded(), update(11, 3, rooms, [{ kind: 'seen', room: 'general' }]));
    assert.deepEqual(byRoom.messages.map((m) => [m.id, m.seen, m.read]), [
      ['03', true, false],
      ['02', false, false],
      ['01', true, false],
    ]);
    const byId = applyFrame(seeded(), update(11, 3, rooms, [{ kind: 'seen', id: '01', room: 'general' }]));
    assert.deepEqual(byId.messages.map((m) => m.seen), [false, false, true]);
  });

  test('archived sets and clears the flag', () => {
    const rooms = { general: 2, billing: 1 };
    const on = applyFrame(seeded(), update(11, 3, rooms, [{ kind: 'archived', id: '03', room: 'general', archived: true }]));
    assert.deepEqual(on.messages.map((m) => m.archived), [true, false, false]);
    const off = applyFrame(on, update(12, 3, rooms, [{ kind: 'archived', id: '03', room: 'general', archived: false }]));
    assert.deepEqual(off.messages.map((m) => m.archived), [false, false, false]);
  });

  test('unknown kinds and malformed changes are ignored, the rest still applies', () => {
    const state = seeded();
    const next = applyFrame(state, update(9, 0, {}, [
      { kind: 'reaction', id: '01', emoji: '🎉' },
      null,
      'read',
      { kind: 'read' },
      { kind: 'seen' },
      { kind: 'archived', id: '01' },
      { kind: 'message', message: { title: 'no id' } },
      { kind: 'seen', id: '02' },
    ]));
    assert.deepEqual(next.messages.map((m) => m.seen), [false, true, false]);
    assert.deepEqual(next.messages.map((m) => m.archived), [false, false, false]);
    assert.equal(next.messages.length, 3);
    // changes that is not an array
    assert.equal(applyFrame(state, { ...update(9, 0, {}), changes: { kind: 'read', room: 'general' } }), state);
  });

  test('changes apply to counts-less frames of a version-less state', () => {
    const next = applyFrame(initialState(), { type: 'update', changes: [{ kind: 'message', message: msg('1', '2024-01-01T00:00:00Z') }] });
    assert.equal(next.messages.length, 1);
    assert.equal(next.unread.total, 0);
  });
});

describe('applyFrame: stale frames', () => {
  const changes = () => [
    { kind: 'read', room: 'general' },
    { kind: 'seen', room: 'billing' },
    { kind: 'archived', id: '01', room: 'general', archived: true },
    { kind: 'seen', id: '02', room: 'billing' },
    { kind: 'message', message: msg('04', '2024-05-01T10:04:00Z') },
    { kind: 'message', message: msg('03', '2024-05-01T10:03:00Z', { title: 'a stale copy' }) },
  ];

  test('a stale frame adds its new messages and single-message seen, and skips room-wide read, room-wide seen and archived', () => {
    const state = seeded(); // version 10
    const next = applyFrame(state, update(9, 0, {}, changes()));
    assert.equal(next.version, 10);
    assert.deepEqual(next.unread, state.unread, 'counts kept');
    assert.deepEqual(next.messages.map((m) => [m.id, m.read, m.seen, m.archived]), [
      ['04', false, false, false],
      ['03', false, false, false],
      ['02', false, true, false],
      ['01', false, false, false],
    ]);
    assert.equal(next.messages[1].title, 'title 03', 'a held message is not replaced');
  });

  test('a frame at the held version is not stale: all its changes apply', () => {
    const next = applyFrame(seeded(), update(10, 0, {}, changes()));
    assert.equal(next.unread.total, 3, 'counts kept (not newer)');
    assert.deepEqual(next.messages.map((m) => [m.id, m.read, m.seen, m.archived]), [
      ['04', false, false, false],
      ['03', true, true, false],
      ['02', false, true, false],
      ['01', true, true, true],
    ]);
  });

  test('a frame without a version, or a state without one, is never stale', () => {
    const versionless = { type: 'update', changes: [{ kind: 'read', room: 'general' }] };
    assert.equal(applyFrame(seeded(), versionless).messages[0].read, true);
    const unversioned = deepFreeze({ ...seeded(), version: null });
    const next = applyFrame(unversioned, { ...update(1, 3, { general: 2, billing: 1 }), changes: [{ kind: 'read', room: 'general' }] });
    assert.equal(next.version, 1);
    assert.equal(next.messages[0].read, true);
  });
});

describe('counts imply flags', () => {
  test('a newer frame putting a room at 0 marks its held messages read and seen, after the frame\'s changes', () => {
    const next = applyFrame(seeded(), update(11, 1, { billing: 1 }, [{ kind: 'message', message: msg('04', '2024-05-01T10:04:00Z') }]));
    assert.deepEqual(next.messages.map((m) => [m.id, m.read, m.seen]), [
      ['04', true, true], // inserted by this frame, in a room the frame's counts say is read
      ['03', true, true],
      ['02', false, false],
      ['01', true, true],
    ]);
  });

  test('a room absent from rooms is at 0; a room above 0 is left alone', () => {
    const next = applyFrame(seeded(), update(11, 2, { general: 2 }, [], { total: 2, rooms: { general: 2 } }));
    assert.deepEqual(next.messages.map((m) => [m.id, m.read, m.seen]), [
      ['03', false, false],
      ['02', true, true],
      ['01', false, false],
    ]);
  });

  test('unseen at 0 marks a room\'s messages seen, not read; without unseen only the unread rule applies', () => {
    const withUnseen = applyFrame(seeded(), update(11, 3, { general: 2, billing: 1 }, [], { total: 1, rooms: { billing: 1 } }));
    assert.deepEqual(withUnseen.messages.map((m) => [m.id, m.read, m.seen]), [
      ['03', false, true],
      ['02', false, false],
      ['01', false, true],
    ]);
    const { unseen, ...withoutUnseen } = update(11, 3, { general: 2, billing: 1 });
    assert.deepEqual(applyFrame(seeded(), withoutUnseen).messages, seeded().messages);
  });

  test('an Unread answer that wins by the version rule implies flags; one that loses implies nothing', () => {
    const state = seeded();
    const wins = applyUnread(state, { version: 11, total: 1, rooms: { billing: 1 }, unseen: { total: 0, rooms: {} } });
    assert.deepEqual(wins.messages.map((m) => [m.id, m.read, m.seen]), [
      ['03', true, true],
      ['02', false, true],
      ['01', true, true],
    ]);
    assert.equal(applyUnread(state, { version: 10, total: 0, rooms: {} }), state);
    assert.equal(applyUnread(state, { version: 4, total: 0, rooms: {} }), state);
    const versionless = applyUnread(state, { total: 2, rooms: { general: 2 } }); // always replaces
    assert.deepEqual(versionless.messages.map((m) => m.read), [false, true, false]);
  });

  test('stale and equal-version frames imply nothing from their counts', () => {
    const state = seeded();
    assert.equal(applyFrame(state, update(9, 0, {})), state);
    assert.equal(applyFrame(state, update(10, 0, {})), state);
  });

  test('merging a page implies nothing from the held counts', () => {
    const state = deepFreeze({ ...initialState(), version: 5, unread: counts(0, {}) });
    const next = mergeMessages(state, [msg('01', '2024-05-01T10:01:00Z')]);
    assert.deepEqual([next.messages[0].read, next.messages[0].seen], [false, false]);
  });
});

describe('mergeMessages', () => {
  test('adds new ids, takes the page\'s copy of known ones, sorts newest first', () => {
    const state = deepFreeze({ ...initialState(), messages: [msg('05', '2024-05-01T10:05:00Z')] });
    const next = mergeMessages(state, [
      msg('06', '2024-05-01T10:06:00Z'),
      msg('05', '2024-05-01T10:05:00Z', { title: 'new title' }),
      msg('04', '2024-05-01T10:04:00Z', { archived: true }),
    ]);
    assert.deepEqual(next.messages.map((m) => m.id), ['06', '05', '04']);
    assert.equal(next.messages[1].title, 'new title');
    assert.equal(next.messages[2].archived, true);
    assert.equal(mergeMessages(state, []), state);
  });

  test('the page\'s read, seen and archived win over the held flags, both ways; unlisted messages are kept', () => {
    const state = deepFreeze({
      ...initialState(),
      messages: [
        msg('03', '2024-05-01T10:03:00Z', { read: true, seen: true }), // wrongly read
        msg('02', '2024-05-01T10:02:00Z', { archived: true }), // wrongly archived
        msg('01', '2024-05-01T10:01:00Z'), // wrongly unread
        msg('00', '2024-05-01T10:00:00Z', { read: true, seen: true }), // older than the page
      ],
    });
    const next = mergeMessages(state, [
      msg('03', '2024-05-01T10:03:00Z'),
      msg('02', '2024-05-01T10:02:00Z', { seen: true }),
      msg('01', '2024-05-01T10:01:00Z', { read: true, seen: true, archived: true }),
    ]);
    assert.deepEqual(next.messages.map((m) => [m.id, m.read, m.seen, m.archived]), [
      ['03', false, false, false],
      ['02', false, true, false],
      ['01', true, true, true],
      ['00', true, true, false],
    ]);
  });

  test('compareMessages puts undated messages last', () => {
    const sorted = [msg('x', 'garbage'), msg('y', '2024-01-01T00:00:00Z')].sort(compareMessages);
    assert.deepEqual(sorted.map((m) => m.id), ['y', 'x']);
  });
});

describe('backoffDelay', () => {
  const opts = { initialMs: 500, maxMs: 30000 };

  test('full jitter: random() times the capped exponential', () => {
    assert.equal(backoffDelay(0, opts, () => 0.5), 250);
    assert.equal(backoffDelay(1, opts, () => 0.5), 500);
    assert.equal(backoffDelay(3, opts, () => 1), 4000);
    assert.equal(backoffDelay(2, opts, () => 0), 0);
  });

  test('never above maxMs, never negative, even for huge attempts', () => {
    for (const attempt of [0, 1, 5, 6, 7, 20, 1100, 1e6]) {
      for (const r of [0, 0.25, 0.999999]) {
        const d = backoffDelay(attempt, opts, () => r);
        assert.ok(Number.isFinite(d) && d >= 0 && d <= 30000, `${attempt}/${r}: ${d}`);
        assert.ok(d <= 500 * 2 ** attempt);
      }
    }
    assert.equal(backoffDelay(6, opts, () => 1), 30000);
    assert.equal(backoffDelay(60, opts, () => 0.5), 15000);
  });

  test('defaults to 500ms/30s and Math.random', () => {
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(0);
      assert.ok(d >= 0 && d < 500);
    }
    assert.equal(backoffDelay(10, undefined, () => 1), 30000);
  });
});

describe('HeraldError', () => {
  test('carries status, code, field and message from an error body', () => {
    const e = HeraldError.fromResponse(400, { error: { code: 'invalid_value', message: 'ids: too many', field: 'ids' } });
    assert.ok(e instanceof Error);
    assert.ok(e instanceof HeraldError);
    assert.equal(e.name, 'HeraldError');
    assert.deepEqual([e.status, e.code, e.field, e.message], [400, 'invalid_value', 'ids', 'ids: too many']);
  });

  test('falls back for bodies that are not herald errors', () => {
    const e = HeraldError.fromResponse(502, null, 'Bad Gateway');
    assert.deepEqual([e.status, e.code, e.field, e.message], [502, 'http_error', undefined, 'Bad Gateway']);
    assert.equal(HeraldError.fromResponse(503, null, '').message, 'HTTP 503');
  });
});
