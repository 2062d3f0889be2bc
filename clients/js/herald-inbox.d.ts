// herald-inbox.d.ts — binds herald-inbox.js's exported values to the types declared in herald.d.ts.
import type { HeraldInboxConstructor, HeraldState, InboxView, InboxViewOptions } from './herald.js';

export type { HeraldInboxElement, HeraldInboxEventMap, InboxItem, InboxView, InboxViewOptions } from './herald.js';

/** The `<herald-inbox>` element class (defined as `herald-inbox` on import in a browser). */
export declare const HeraldInbox: HeraldInboxConstructor;
/** What the element shows for a state (pure). */
export declare function inboxView(state: HeraldState, options?: InboxViewOptions): InboxView;
/** "now", "5m", "3h", "2d", then the date. */
export declare function relativeTime(iso: string, now: number): string;
/** ws(s)://<host>/live for a page's location. */
export declare function defaultWsUrl(location: { protocol: string; host: string }): string;
