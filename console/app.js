// The console's shell: signs in, then routes `#/…` to a view. A view renders into <main>
// and may return a function that stops what it started (a refresh timer).

import { currentToken, finishSignIn, signInView, whoView, whenSignedOut } from './sign-in.js';
import { errorBox, h } from './ui.js';
import * as campaigns from './campaigns.js';
import * as deadLetters from './dead-letters.js';
import * as lookup from './lookup.js';

const routes = [
  [/^#\/campaigns\/new$/, () => campaigns.create],
  [/^#\/campaigns\/([^/?]+)$/, (m) => (main, current) => campaigns.detail(main, decodeURIComponent(m[1]), current)],
  [/^#\/campaigns$/, () => campaigns.list],
  [/^#\/dead-letters\/([a-z-]+)$/, (m) => (main, current) => deadLetters.queue(main, m[1], current)],
  [/^#\/dead-letters$/, () => deadLetters.overview],
  [/^#\/lookup(?:\?(.*))?$/, (m) => (main) => lookup.view(main, new URLSearchParams(m[1] ?? ''))],
];

const main = document.getElementById('main');
const who = document.getElementById('who');
let config = { sign_in: null };
let stop = null;
// Each render's number: a view that finishes after a newer render started stops what it
// started and paints nothing.
let renders = 0;
// The first view leaves focus where the browser puts it (so Tab starts at the skip link);
// every later one moves it to its heading, so screen readers announce the new view.
let rendered = false;
const focusHeading = () => {
  if (rendered) main.querySelector('h1')?.focus();
  rendered = true;
};

async function render(message) {
  const mine = ++renders;
  if (stop) {
    stop();
    stop = null;
  }
  whoView(who, config);
  if (!currentToken()) {
    signInView(main, config, message, () => {
      if (!location.hash || location.hash === '#') location.hash = '#/campaigns';
      render();
    });
    focusHeading();
    return;
  }
  const hash = location.hash && location.hash !== '#' ? location.hash : '#/campaigns';
  for (const link of document.querySelectorAll('nav a')) {
    const section = link.getAttribute('href');
    if (hash === section || hash.startsWith(`${section}/`) || hash.startsWith(`${section}?`)) {
      link.setAttribute('aria-current', 'page');
    } else {
      link.removeAttribute('aria-current');
    }
  }
  const route = routes.find(([pattern]) => pattern.test(hash));
  if (!route) {
    location.hash = '#/campaigns';
    return;
  }
  const view = route[1](hash.match(route[0]));
  main.replaceChildren(h('p', { text: 'Loading…' }));
  const current = () => mine === renders;
  // The view paints into its own element, put into <main> only while it is the current
  // one: a view that answers late (or repaints after an action) never covers a newer one.
  const page = h('div', { class: 'view' });
  try {
    const stopView = (await view(page, current)) ?? null;
    if (!current()) {
      stopView?.();
      return;
    }
    stop = stopView;
    main.replaceChildren(page);
  } catch (error) {
    // A refused token has already brought the sign-in view (a newer render).
    if (!current()) return;
    main.replaceChildren(h('h1', { tabindex: '-1', text: 'Something went wrong' }), errorBox(error));
  }
  focusHeading();
}

whenSignedOut((message) => render(message));
window.addEventListener('hashchange', () => render());

async function start() {
  try {
    const response = await fetch('/console/config.json');
    if (response.ok) config = await response.json();
  } catch {
    // No config: a pasted token still works.
  }
  const problem = await finishSignIn(config);
  render(problem);
}

start();
