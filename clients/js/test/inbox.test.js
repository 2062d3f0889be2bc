// inbox.test.js — tests of herald-inbox.js's DOM-free logic (inboxView, relativeTime, defaultWsUrl); the module must also import in node.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';

import { applyFrame, initialState } from '../herald.js';
import { defaultWsUrl, HeraldInbox, inboxView, relativeTime } from '../herald-inbox.js';
import { msg } from '../testing/fakes.js';

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
