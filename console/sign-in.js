// Signing in. Deployed with the stack's Cognito user pool, the console signs in through the
// hosted UI (authorization code with PKCE: no secret in the page) and keeps the ID token,
// which carries the operator's tenant and groups. Otherwise an operator pastes a token from
// their issuer. Locally, `cargo xtask dev` prints a link with a token in the fragment. The
// token lives in this tab's sessionStorage only.

import { h, field, heading, errorBox } from './ui.js';

const TOKEN = 'herald.console.token';
const PKCE = 'herald.console.pkce';

/** The claims of a JWT (not verified here: the API verifies every call). */
export function claimsOf(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(decodeURIComponent(escape(atob(part))));
  } catch {
    return null;
  }
}

/** The token in use, or null when there is none or it has expired. */
export function currentToken() {
  const token = sessionStorage.getItem(TOKEN);
  const claims = token && claimsOf(token);
  if (!claims) return null;
  if (claims.exp && claims.exp * 1000 < Date.now()) return null;
  return token;
}

export function useToken(token) {
  sessionStorage.setItem(TOKEN, token.trim());
}

let onSignOut = () => {};
export function whenSignedOut(callback) { onSignOut = callback; }

export function signOut(message) {
  sessionStorage.removeItem(TOKEN);
  onSignOut(message);
}

const redirectUri = () => `${location.origin}/console`;

function randomText(bytes) {
  const raw = crypto.getRandomValues(new Uint8Array(bytes));
  return base64Url(raw);
}

function base64Url(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

async function startHostedSignIn(signIn) {
  const verifier = randomText(32);
  const state = randomText(16);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  sessionStorage.setItem(PKCE, JSON.stringify({ verifier, state, back: location.hash }));
  const query = new URLSearchParams({
    response_type: 'code',
    client_id: signIn.client_id,
    redirect_uri: redirectUri(),
    scope: signIn.scopes,
    state,
    code_challenge: base64Url(digest),
    code_challenge_method: 'S256',
  });
  location.assign(`${signIn.authorize_url}?${query}`);
}

/** Takes a token from where a sign-in leaves one: `#token=…` (the local link), or the
 * hosted UI's `?code=…&state=…` (exchanged for tokens). Returns an error text or null. */
export async function finishSignIn(config) {
  if (location.hash.startsWith('#token=')) {
    useToken(decodeURIComponent(location.hash.slice('#token='.length)));
    history.replaceState(null, '', `${location.pathname}#/campaigns`);
    return null;
  }
  const query = new URLSearchParams(location.search);
  if (!query.has('code') || !config.sign_in) return null;
  const pending = JSON.parse(sessionStorage.getItem(PKCE) ?? 'null');
  sessionStorage.removeItem(PKCE);
  history.replaceState(null, '', `${location.pathname}${pending?.back || '#/campaigns'}`);
  if (!pending || pending.state !== query.get('state')) {
    return 'The sign-in came back without the state this tab sent: sign in again.';
  }
  let response;
  try {
    response = await fetch(config.sign_in.token_url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        client_id: config.sign_in.client_id,
        code: query.get('code'),
        redirect_uri: redirectUri(),
        code_verifier: pending.verifier,
      }),
    });
  } catch (error) {
    return `The sign-in could not be finished (${error.message}): sign in again.`;
  }
  const tokens = await response.json().catch(() => ({}));
  if (!response.ok || !tokens.id_token) {
    return `The sign-in could not be finished: ${tokens.error ?? response.status}.`;
  }
  useToken(tokens.id_token);
  return null;
}

/** The sign-in view: the hosted UI's button when the stack has one, and a pasted token. */
export function signInView(main, config, message, done) {
  const token = h('textarea', { rows: 4, autocomplete: 'off', spellcheck: 'false', required: true });
  const problem = h('div');
  const form = h('form', {
    class: 'panel',
    onsubmit: (event) => {
      event.preventDefault();
      const claims = claimsOf(token.value.trim());
      if (!claims) {
        problem.replaceChildren(errorBox({ message: 'That is not a JWT (three base64url parts separated by dots).', field: 'token' }));
        token.setAttribute('aria-invalid', 'true');
        token.focus();
        return;
      }
      useToken(token.value);
      done();
    },
  },
  field('Token', token, { hint: 'An operator\'s JWT from your issuer: its tenant claim, and the scopes herald/campaigns, herald/send, herald/contacts, herald/dead-letters (or membership of the operator group).' }),
  problem,
  h('div', { class: 'actions' }, h('button', { type: 'submit', text: 'Use this token' })));
  const hosted = config.sign_in
    ? h('section', { class: 'panel' },
      h('h2', { text: 'With your account' }),
      h('button', { type: 'button', text: 'Sign in', onclick: () => startHostedSignIn(config.sign_in) }))
    : null;
  main.replaceChildren(...[
    heading('Sign in'),
    message ? h('p', { role: 'alert', text: message }) : null,
    hosted,
    h('h2', { text: hosted ? 'Or with a token' : 'With a token' }),
    form,
  ].filter(Boolean));
}

/** Who is signed in, and a way out. */
export function whoView(container, config) {
  const token = currentToken();
  if (!token) {
    container.replaceChildren();
    return;
  }
  const claims = claimsOf(token) ?? {};
  const tenant = claims['custom:tenant'] ?? claims.tenant ?? '—';
  const who = claims.email ?? claims['cognito:username'] ?? claims.sub ?? 'token';
  const out = h('button', {
    type: 'button',
    class: 'secondary',
    text: 'Sign out',
    onclick: () => {
      signOut('Signed out.');
      if (config.sign_in?.logout_url) {
        const query = new URLSearchParams({ client_id: config.sign_in.client_id, logout_uri: redirectUri() });
        location.assign(`${config.sign_in.logout_url}?${query}`);
      }
    },
  });
  container.replaceChildren(h('span', { text: `${who} · tenant ${tenant}` }), out);
}
