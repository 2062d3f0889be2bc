// Campaigns: the list (newest first), a form to create one (an inline list of user ids, an
// uploaded file or a file already in the audience bucket; now or at a time; each
// recipient's local time; a rate), and a campaign's page: its facts, exact progress, a
// chart of progress over time while the page is open, a recipient lookup and cancel.

import { api, path } from './api.js';
import { progressChart, sample } from './chart.js';
import {
  announce, badge, confirmAction, errorBox, field, h, heading, markFieldError, table, uid, when,
} from './ui.js';

const REFRESH_MS = 2000;
const LIVE = new Set(['scheduled', 'running']);

export async function list(main) {
  const rows = h('tbody');
  const more = h('button', { type: 'button', class: 'secondary', text: 'Show older campaigns', hidden: true });
  let cursor = null;
  async function load() {
    const query = cursor ? `?limit=50&cursor=${encodeURIComponent(cursor)}` : '?limit=50';
    const page = await api('GET', `/v1/campaigns${query}`);
    for (const c of page.campaigns) {
      rows.append(h('tr', {},
        h('td', {}, h('a', { href: `#/campaigns/${encodeURIComponent(c.id)}`, text: c.name })),
        h('td', {}, badge(c.status)),
        h('td', { text: when(c.send_at) }),
        h('td', { text: c.channels.join(', ') }),
        h('td', { text: when(c.created_at) })));
    }
    cursor = page.next_cursor;
    more.hidden = !cursor;
  }
  more.addEventListener('click', () => load().catch((e) => announce(e.message)));
  await load();
  const empty = rows.children.length === 0
    ? h('p', { text: 'No campaigns yet.' })
    : null;
  const listing = table('Campaigns, newest first', ['Name', 'Status', 'Send at', 'Channels', 'Created'], []);
  listing.querySelector('tbody').replaceWith(rows);
  main.replaceChildren(
    heading('Campaigns'),
    h('p', {}, h('a', { class: 'button', href: '#/campaigns/new', text: 'New campaign' })),
    empty ?? listing,
    more,
  );
}

/** The wall-clock time of a datetime-local value, with this browser's offset at that time. */
function withOffset(local) {
  const at = new Date(local);
  const minutes = -at.getTimezoneOffset();
  const sign = minutes >= 0 ? '+' : '-';
  const abs = Math.abs(minutes);
  const pad = (n) => String(n).padStart(2, '0');
  return `${local.length === 16 ? `${local}:00` : local}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

function radio(name, value, label, checked) {
  const id = uid(name);
  return h('span', {},
    h('input', { type: 'radio', name, id, value, checked }),
    h('label', { for: id, text: ` ${label}` }));
}

export async function create(main) {
  const name = h('input', { type: 'text', required: true, maxlength: 200 });
  const title = h('input', { type: 'text', required: true, maxlength: 200 });
  const body = h('textarea', { required: true, maxlength: 4000 });
  const channels = h('fieldset', { 'data-field': 'channels' },
    h('legend', { text: 'Channels' }),
    ['inbox', 'email', 'sms', 'push'].map((c) => {
      const id = uid('channel');
      return h('span', {}, h('input', { type: 'checkbox', id, value: c, checked: c === 'inbox' }), h('label', { for: id, text: ` ${c}` }));
    }));
  const users = h('textarea', { rows: 5, placeholder: 'alice\nbob' });
  const file = h('input', { type: 'file', accept: '.csv,.txt,text/csv,text/plain' });
  const s3 = h('input', { type: 'text', placeholder: 's3://bucket/tenant/users.csv' });
  const audienceKind = h('fieldset', {},
    h('legend', { text: 'Audience' }),
    radio('audience', 'users', 'User ids', true),
    radio('audience', 'file', 'Upload a file', false),
    radio('audience', 's3', 'A file in the audience bucket', false));
  const usersField = field('User ids, one a line', users, { name: 'audience.users', hint: 'At most 10,000; upload a file for more.' });
  const fileField = field('Audience file', file, { name: 'audience.s3', hint: 'One user id a line, or a CSV with a user_id column; up to 4 MiB.' });
  const s3Field = field('S3 URI', s3, { name: 'audience.s3', hint: 'A file under your tenant\'s prefix of the stack\'s AudienceBucket.' });
  const showAudience = () => {
    const kind = audienceKind.querySelector('input:checked').value;
    usersField.hidden = kind !== 'users';
    fileField.hidden = kind !== 'file';
    s3Field.hidden = kind !== 's3';
  };
  audienceKind.addEventListener('change', showAudience);
  const whenKind = h('fieldset', { 'data-field': 'send_at' },
    h('legend', { text: 'When' }),
    radio('when', 'now', 'Now', true),
    radio('when', 'at', 'At a time', false));
  const sendAt = h('input', { type: 'datetime-local' });
  const localTime = h('input', { type: 'checkbox', id: uid('local') });
  const zone = h('input', { type: 'text', value: Intl.DateTimeFormat().resolvedOptions().timeZone });
  const atFields = h('div', { hidden: true },
    field('Send at', sendAt, { name: 'send_at', hint: 'In your browser\'s time zone.' }),
    h('div', { class: 'field' }, h('span', {}, localTime, h('label', { for: localTime.id, text: ' At this wall-clock time in each recipient\'s own time zone' }))),
    field('Time zone for recipients without one', zone, { name: 'timezone', hint: 'An IANA zone, e.g. Europe/Paris.' }));
  localTime.dataset.field = 'local_time';
  whenKind.addEventListener('change', () => {
    atFields.hidden = whenKind.querySelector('input:checked').value !== 'at';
  });
  const rate = h('input', { type: 'number', min: 1, max: 10000, inputmode: 'numeric' });
  const problem = h('div');
  const submit = h('button', { type: 'submit', text: 'Create campaign' });
  const form = h('form', { class: 'panel', novalidate: true },
    field('Name', name, { name: 'name', hint: 'For you; recipients never see it.' }),
    field('Title', title, { name: 'title' }),
    field('Body', body, { name: 'body' }),
    channels,
    audienceKind, usersField, fileField, s3Field,
    whenKind, atFields,
    field('Rate (notifications a second)', rate, { name: 'rate_per_second', hint: 'Optional, 1-10,000; empty: as fast as herald goes.' }),
    problem,
    h('div', { class: 'actions' }, submit, h('a', { class: 'button secondary', href: '#/campaigns', text: 'Back to campaigns' })));
  showAudience();

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    problem.replaceChildren();
    markFieldError(form, null);
    submit.disabled = true;
    try {
      const request = {
        name: name.value.trim(),
        title: title.value,
        body: body.value,
        channels: [...channels.querySelectorAll('input:checked')].map((c) => c.value),
      };
      const kind = audienceKind.querySelector('input:checked').value;
      if (kind === 'users') {
        request.audience = { users: users.value.split(/\r?\n/).map((u) => u.trim()).filter(Boolean) };
      } else if (kind === 's3') {
        request.audience = { s3: s3.value.trim() };
      } else {
        const chosen = file.files[0];
        if (!chosen) {
          throw Object.assign(new Error('Choose a file to upload.'), { field: 'audience.s3' });
        }
        announce(`Uploading ${chosen.name}…`);
        const fileName = chosen.name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '') || 'audience.csv';
        const stored = await api('POST', `/v1/audiences?name=${encodeURIComponent(fileName.slice(0, 100))}`, undefined, { file: chosen });
        request.audience = { s3: stored.s3 };
      }
      if (whenKind.querySelector('input:checked').value === 'now') {
        request.send_at = 'now';
      } else {
        if (!sendAt.value) {
          throw Object.assign(new Error('Choose when to send it.'), { field: 'send_at' });
        }
        request.send_at = withOffset(sendAt.value);
        if (localTime.checked) {
          request.local_time = true;
          if (zone.value.trim()) request.timezone = zone.value.trim();
        }
      }
      if (rate.value) request.rate_per_second = Number(rate.value);
      const made = await api('POST', '/v1/campaigns', request);
      announce(`Campaign ${request.name} created.`);
      location.hash = `#/campaigns/${encodeURIComponent(made.id)}`;
    } catch (error) {
      problem.replaceChildren(errorBox(error));
      markFieldError(form, error);
    } finally {
      submit.disabled = false;
    }
  });
  main.replaceChildren(heading('New campaign'), form);
}

const samplesKey = (id) => `herald.console.samples.${id}`;

function progressRows(progress) {
  const sent = Object.entries(progress?.sent ?? {});
  const rows = [
    ['Audience', progress?.audience], ['Enqueued', progress?.enqueued], ['Held for local time', progress?.held],
    ['Committed (in the inbox)', progress?.committed],
    ...sent.map(([channel, n]) => [`Sent by ${channel}`, n]),
    ['Skipped', progress?.skipped], ['Failed', progress?.failed],
  ];
  for (const [reason, n] of Object.entries(progress?.skipped_by ?? {})) {
    if (n) rows.push([`Skipped: ${reason.replace('_', ' ')}`, n]);
  }
  return rows.map(([label, n]) => h('tr', {}, h('th', { scope: 'row', text: label }), h('td', { class: 'num', text: n ?? 0 })));
}

export async function detail(main, id, current = () => true) {
  let campaign = await api('GET', path`/v1/campaigns/${id}`);
  const samples = JSON.parse(sessionStorage.getItem(samplesKey(id)) ?? '[]');
  const facts = h('dl', { class: 'facts' });
  const progressTable = table('Progress', ['What', 'How many#'], []);
  const chartSlot = h('div');
  const cancelResult = h('p', { role: 'status' });
  const cancel = h('button', { type: 'button', class: 'danger', text: 'Cancel campaign' });
  const statusLine = h('p');

  function paint() {
    facts.replaceChildren(...[
      h('dt', { text: 'Status' }), h('dd', {}, badge(campaign.status)),
      h('dt', { text: 'Send at' }), h('dd', { text: campaign.local_time ? `${campaign.local_send_at} in each recipient's time zone` : when(campaign.send_at) }),
      h('dt', { text: 'Channels' }), h('dd', { text: campaign.channels.join(', ') }),
      h('dt', { text: 'Audience' }), h('dd', { text: campaign.audience?.s3 ?? `${campaign.audience?.users ?? campaign.progress?.audience ?? '?'} users listed` }),
      h('dt', { text: 'Rate' }), h('dd', { text: campaign.rate_per_second ? `${campaign.rate_per_second} a second` : 'as fast as herald goes' }),
      h('dt', { text: 'Created' }), h('dd', { text: when(campaign.created_at) }),
      h('dt', { text: 'Notification id' }), h('dd', {}, h('code', { text: campaign.notification_id ?? '—' })),
      ...(campaign.failure ? [h('dt', { text: 'Failure' }), h('dd', { class: 'error', text: campaign.failure })] : []),
    ]);
    progressTable.querySelector('tbody').replaceChildren(...progressRows(campaign.progress));
    chartSlot.replaceChildren(progressChart(samples));
    cancel.hidden = !LIVE.has(campaign.status);
    statusLine.textContent = LIVE.has(campaign.status)
      ? `Refreshing every ${REFRESH_MS / 1000} s while the campaign is ${campaign.status}.`
      : `The campaign is ${campaign.status}.`;
  }

  function record() {
    samples.push(sample(campaign.progress));
    if (samples.length > 600) samples.splice(0, samples.length - 600);
    sessionStorage.setItem(samplesKey(id), JSON.stringify(samples));
  }

  cancel.addEventListener('click', async () => {
    const ok = await confirmAction({
      title: `Cancel ${campaign.name}?`,
      text: 'Recipients not reached yet will not get it, and it cannot be resumed. Those already reached keep it.',
      confirm: 'Cancel campaign',
    });
    if (!ok) return;
    try {
      campaign = await api('DELETE', path`/v1/campaigns/${id}`);
      const note = `Cancelled: ${campaign.cancelled?.pending ?? 0} pending and ${campaign.cancelled?.held ?? 0} held will not get it.`;
      cancelResult.textContent = note;
      announce(note);
      record();
      paint();
    } catch (error) {
      cancelResult.replaceChildren(errorBox(error));
    }
  });

  const recipient = h('input', { type: 'text', autocomplete: 'off' });
  const lookupForm = h('form', {
    class: 'panel',
    onsubmit: (event) => {
      event.preventDefault();
      const query = new URLSearchParams({ notification: campaign.notification_id ?? '', user: recipient.value.trim() });
      location.hash = `#/lookup?${query}`;
    },
  }, field('User id', recipient, { name: 'user', hint: 'What this campaign did for one recipient, channel by channel.' }),
  h('div', { class: 'actions' }, h('button', { type: 'submit', text: 'Look up recipient' })));

  record();
  paint();
  main.replaceChildren(
    heading(`Campaign ${campaign.name}`),
    facts,
    h('div', { class: 'actions' }, cancel, h('a', { class: 'button secondary', href: '#/campaigns', text: 'All campaigns' })),
    cancelResult,
    h('h2', { text: 'Progress' }),
    statusLine,
    chartSlot,
    progressTable,
    h('h2', { text: 'A recipient' }),
    lookupForm,
  );

  const timer = setInterval(async () => {
    if (!LIVE.has(campaign.status) || !current()) return;
    try {
      campaign = await api('GET', path`/v1/campaigns/${id}`);
      record();
      paint();
      if (!LIVE.has(campaign.status)) announce(`Campaign ${campaign.name} is ${campaign.status}.`);
    } catch (error) {
      statusLine.textContent = `Could not refresh: ${error.message}`;
    }
  }, REFRESH_MS);
  return () => clearInterval(timer);
}

