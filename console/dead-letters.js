// Dead letters: every DLQ of the stack with its depth and oldest age, and a DLQ's messages
// with herald's reason, to redrive back to the queue they came from (the chosen ones, or
// all of them, 100 a call until none remain). Needs the herald/dead-letters scope.

import { api, path } from './api.js';
import {
  age, announce, confirmAction, errorBox, h, heading, table, uid,
} from './ui.js';

/** Calls of `{"all": true}` one "Redrive all" makes at most (100 messages each). */
const MAX_ALL_CALLS = 50;

export async function overview(main) {
  const answer = await api('GET', '/v1/dead-letters');
  const rows = answer.queues.map((q) => h('tr', {},
    h('td', {}, h('a', { href: `#/dead-letters/${q.queue}`, text: q.queue })),
    h('td', { class: 'num', text: q.messages }),
    h('td', { class: 'num', text: q.in_flight }),
    h('td', { text: q.messages ? age(q.oldest_age_seconds) : '—' })));
  const total = answer.queues.reduce((n, q) => n + q.messages, 0);
  main.replaceChildren(
    heading('Dead letters'),
    h('p', { text: total ? `${total} message${total === 1 ? '' : 's'} waiting in the dead-letter queues.` : 'Every dead-letter queue is empty.' }),
    table('Dead-letter queues', ['Queue', 'Messages#', 'In flight#', 'Oldest'], rows),
    h('p', { class: 'hint', text: 'Oldest: of up to 10 messages sampled; exact for a queue of 10 or fewer.' }),
    h('div', { class: 'actions' }, h('button', { type: 'button', class: 'secondary', text: 'Refresh', onclick: () => overview(main).then(() => main.querySelector('h1').focus()) })),
  );
}

export async function queue(main, name, current = () => true) {
  const answer = await api('GET', `${path`/v1/dead-letters/${name}`}?limit=50`);
  const result = h('p', { role: 'status', class: 'result' });
  const boxes = [];
  const rows = answer.messages.map((m) => {
    const id = uid('pick');
    const box = h('input', { type: 'checkbox', id, value: m.id });
    boxes.push(box);
    return h('tr', {},
      h('td', {}, box, h('label', { for: id, class: 'visually-hidden', text: `Select message ${m.id}` })),
      h('td', { text: m.reason ?? 'none: SQS moved it here after its queue\'s MaxReceiveCount receives (a consumer kept failing or timing out on it)' }),
      h('td', { text: m.sent_at ? `${age(m.age_seconds)} ago` : '—' }),
      h('td', { class: 'num', text: m.receive_count }),
      h('td', {}, h('details', {}, h('summary', { text: `Body of ${m.id.slice(0, 8)}…` }),
        h('pre', { text: pretty(m.body) + (m.body_truncated ? '\n… (cut at 4 KiB)' : '') }))));
  });
  const all = h('input', { type: 'checkbox', id: uid('all') });
  const chosen = h('button', { type: 'button', text: 'Redrive selected', disabled: true });
  const everything = h('button', { type: 'button', class: 'secondary', text: 'Redrive all', disabled: answer.depth.messages === 0 && answer.messages.length === 0 });
  const sync = () => {
    const picked = boxes.filter((b) => b.checked).length;
    chosen.disabled = picked === 0;
    chosen.textContent = picked ? `Redrive ${picked} selected` : 'Redrive selected';
    all.checked = picked > 0 && picked === boxes.length;
  };
  all.addEventListener('change', () => {
    for (const box of boxes) box.checked = all.checked;
    sync();
  });
  for (const box of boxes) box.addEventListener('change', sync);

  async function done(moved, notFound, failed, remaining) {
    const parts = [`Moved ${moved} message${moved === 1 ? '' : 's'} back to the ${name} queue.`];
    if (notFound.length) parts.push(`${notFound.length} not found (moved already, or beyond the first 100 in the queue).`);
    if (failed.length) parts.push(`${failed.length} refused by the queue and left here: ${failed[0].error}`);
    parts.push(`${remaining} remain.`);
    const text = parts.join(' ');
    announce(text);
    // The operator may have moved on to another page meanwhile: then only the announcement.
    if (!current()) return;
    await queue(main, name, current);
    main.querySelector('.result').textContent = text;
    main.querySelector('h1').focus();
  }

  chosen.addEventListener('click', async () => {
    const ids = boxes.filter((b) => b.checked).map((b) => b.value);
    const ok = await confirmAction({
      title: `Redrive ${ids.length} message${ids.length === 1 ? '' : 's'}?`,
      text: `They go back to the ${name} queue to be taken again; a message that fails again comes back here with a new reason.`,
      confirm: 'Redrive',
    });
    if (!ok) return;
    try {
      const r = await api('POST', path`/v1/dead-letters/${name}/redrive`, { ids });
      await done(r.moved.length, r.not_found, r.failed, r.remaining);
    } catch (error) {
      result.replaceChildren(errorBox(error));
    }
  });

  everything.addEventListener('click', async () => {
    const ok = await confirmAction({
      title: `Redrive every message of ${name}?`,
      text: `All ${answer.depth.messages} go back to the ${name} queue, 100 a call. Fix what made them fail first, or they come back here.`,
      confirm: 'Redrive all',
    });
    if (!ok) return;
    let moved = 0;
    let failed = [];
    let remaining = 0;
    try {
      for (let call = 0; call < MAX_ALL_CALLS; call++) {
        const r = await api('POST', path`/v1/dead-letters/${name}/redrive`, { all: true });
        moved += r.moved.length;
        failed = failed.concat(r.failed);
        remaining = r.remaining;
        result.textContent = `Moved ${moved} so far…`;
        if (r.moved.length === 0 || remaining === 0) break;
      }
      await done(moved, [], failed, remaining);
    } catch (error) {
      result.replaceChildren(errorBox(error));
    }
  });

  const listing = answer.messages.length
    ? table(`Messages in the ${name} dead-letter queue`, [
      h('span', {}, all, h('label', { for: all.id, class: 'visually-hidden', text: 'Select every message listed' })),
      'Reason', 'Sent', 'Receives#', 'Body'], rows)
    : h('p', { text: 'No message in this queue.' });
  main.replaceChildren(
    heading(`Dead letters: ${name}`),
    h('p', { text: `${answer.depth.messages} waiting, ${answer.depth.in_flight} in flight. Listed: ${answer.messages.length} (at most 50).` }),
    h('div', { class: 'actions' }, chosen, everything,
      h('a', { class: 'button secondary', href: '#/dead-letters', text: 'All queues' })),
    result,
    listing,
  );
}

function pretty(body) {
  try {
    return JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    return body;
  }
}
