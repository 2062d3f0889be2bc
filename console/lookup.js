// Look up: what herald did with one notification for one user, channel by channel (a
// campaign's notification id works too), and a user: their contact and preferences,
// devices, and the suppressions on their addresses, which an operator may remove.

import { api, path } from './api.js';
import {
  announce, badge, confirmAction, errorBox, field, h, heading, markFieldError, table, when,
} from './ui.js';

export async function view(main, query) {
  const notification = h('input', { type: 'text', autocomplete: 'off', value: query.get('notification') ?? '' });
  const forUser = h('input', { type: 'text', autocomplete: 'off', value: query.get('user') ?? '' });
  const deliveryResult = h('div', { 'aria-live': 'polite' });
  const deliveryForm = h('form', { class: 'panel' },
    field('Notification id', notification, { name: 'id', hint: 'The id POST /v1/notifications answered, or a campaign\'s notification id.' }),
    field('User id', forUser, { name: 'user', hint: 'The recipient (needed for a campaign\'s notification).' }),
    h('div', { class: 'actions' }, h('button', { type: 'submit', text: 'Look up delivery' })),
    deliveryResult);
  let deliveries = 0;
  async function showDelivery() {
    const mine = ++deliveries;
    markFieldError(deliveryForm, null);
    deliveryResult.replaceChildren(h('p', { text: 'Looking…' }));
    try {
      if (!notification.value.trim()) throw Object.assign(new Error('Give a notification id.'), { field: 'id' });
      const user = forUser.value.trim();
      const url = path`/v1/notifications/${notification.value.trim()}` + (user ? `?user=${encodeURIComponent(user)}` : '');
      const status = await api('GET', url);
      if (mine !== deliveries) return;
      const rows = Object.entries(status.channels ?? {}).map(([channel, record]) => h('tr', {},
        h('th', { scope: 'row', text: channel }),
        h('td', {}, badge(record.state)),
        h('td', { text: record.reason ?? '' }),
        h('td', { text: record.detail ?? '' }),
        h('td', { text: when(record.updated_at) })));
      deliveryResult.replaceChildren(
        h('h2', { text: `Delivery of ${status.id}${user ? ` to ${user}` : ''}` }),
        rows.length
          ? table('Delivery by channel', ['Channel', 'State', 'Reason', 'Detail', 'Updated'], rows)
          : h('p', { text: 'No channel has a record yet (inbox only, or not taken yet).' }));
    } catch (error) {
      if (mine !== deliveries) return;
      deliveryResult.replaceChildren(errorBox(error));
      markFieldError(deliveryForm, error);
    }
  }
  deliveryForm.addEventListener('submit', (event) => {
    event.preventDefault();
    showDelivery();
  });

  const userId = h('input', { type: 'text', autocomplete: 'off', value: query.get('user') ?? '' });
  const userResult = h('div');
  const userForm = h('form', { class: 'panel' },
    field('User id', userId, { name: 'user' }),
    h('div', { class: 'actions' }, h('button', { type: 'submit', text: 'Look up user' })),
    userResult);
  // Only the latest look-up paints: an earlier one answering late (say, from before a
  // suppression was removed) would show what is no longer so.
  let lookups = 0;
  async function showUser() {
    const mine = ++lookups;
    markFieldError(userForm, null);
    const user = userId.value.trim();
    userResult.replaceChildren(h('p', { text: 'Looking…' }));
    try {
      if (!user) throw Object.assign(new Error('Give a user id.'), { field: 'user' });
      const contact = await api('GET', path`/v1/users/${user}/contact`).catch((error) => {
        if (error.status === 404) return null;
        throw error;
      });
      const devices = await api('GET', path`/v1/users/${user}/devices`);
      const addresses = [contact?.email, contact?.phone].filter(Boolean);
      const suppressions = [];
      for (const address of addresses) {
        const found = await api('GET', `/v1/suppressions?address=${encodeURIComponent(address)}`);
        for (const entry of found.suppressions) suppressions.push(entry);
      }
      if (mine !== lookups) return;
      userResult.replaceChildren(...userSections(user, contact, devices.devices, suppressions, showUser));
    } catch (error) {
      if (mine !== lookups) return;
      userResult.replaceChildren(errorBox(error));
      markFieldError(userForm, error);
    }
  }
  userForm.addEventListener('submit', (event) => {
    event.preventDefault();
    showUser();
  });

  main.replaceChildren(
    heading('Look up'),
    h('h2', { text: 'A delivery' }),
    deliveryForm,
    h('h2', { text: 'A user' }),
    userForm,
  );
  if (notification.value) showDelivery();
  if (userId.value) showUser();
}

function userSections(user, contact, devices, suppressions, refresh) {
  const prefs = contact?.preferences ?? {};
  const channels = prefs.channels ?? {};
  const contactFacts = contact
    ? h('dl', { class: 'facts' },
      h('dt', { text: 'Email' }), h('dd', { text: contact.email ?? '—' }),
      h('dt', { text: 'Phone' }), h('dd', { text: contact.phone ?? '—' }),
      h('dt', { text: 'Locale' }), h('dd', { text: contact.locale ?? '—' }),
      h('dt', { text: 'Time zone' }), h('dd', { text: contact.timezone ?? 'UTC' }),
      h('dt', { text: 'Marketing' }), h('dd', { text: prefs.marketing === false ? 'withheld' : 'allowed' }),
      h('dt', { text: 'Channels off' }), h('dd', { text: Object.entries(channels).filter(([, on]) => on === false).map(([c]) => c).join(', ') || 'none' }),
      h('dt', { text: 'Quiet hours' }), h('dd', { text: contact.quiet_hours ? `${contact.quiet_hours.start}-${contact.quiet_hours.end}` : 'none' }))
    : h('p', { text: 'No contact stored: herald has no address for this user (inbox only).' });
  const deviceRows = devices.map((d) => h('tr', {},
    h('td', { text: d.platform }), h('td', { text: d.app ?? '' }),
    h('td', {}, h('code', { text: `${d.token.slice(0, 16)}…` })), h('td', { text: when(d.registered_at) })));
  const suppressionRows = suppressions.map((s) => {
    const remove = h('button', {
      type: 'button',
      class: 'danger',
      text: 'Remove',
      'aria-label': `Remove the suppression of ${s.address}`,
      disabled: s.scope === 'global',
      title: s.scope === 'global' ? 'The recipient\'s own opt-out (an SMS STOP): only they can lift it.' : undefined,
    });
    remove.addEventListener('click', async () => {
      const ok = await confirmAction({
        title: `Send to ${s.address} again?`,
        text: `It was suppressed for: ${s.reason}. herald will send to it again; the removal is kept in the audit trail with your name.`,
        confirm: 'Remove suppression',
      });
      if (!ok) return;
      try {
        await api('DELETE', `/v1/suppressions?address=${encodeURIComponent(s.address)}&note=${encodeURIComponent(`removed in the console for ${user}`)}`);
        announce(`${s.address} is no longer suppressed.`);
        await refresh();
      } catch (error) {
        announce(error.message);
      }
    });
    return h('tr', {}, h('td', { text: s.address }), h('td', { text: s.scope }), h('td', { text: s.reason }),
      h('td', { text: when(s.suppressed_at) }), h('td', {}, remove));
  });
  return [
    h('h3', { text: `Contact and preferences of ${user}` }),
    contactFacts,
    h('h3', { text: 'Devices' }),
    deviceRows.length ? table('Push devices', ['Platform', 'App', 'Token', 'Registered'], deviceRows) : h('p', { text: 'No push device registered.' }),
    h('h3', { text: 'Suppressions' }),
    suppressionRows.length
      ? table('Suppressions of the user\'s addresses', ['Address', 'Scope', 'Reason', 'Since', 'Action'], suppressionRows)
      : h('p', { text: 'None of the user\'s addresses is suppressed.' }),
  ];
}


