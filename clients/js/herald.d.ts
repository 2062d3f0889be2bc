// herald.d.ts — TypeScript declarations for herald.js (the client) and the types of herald-inbox.js (the <herald-inbox> element).
/// <reference lib="dom" />

// ---- wire types ----

/** Counts of one kind (unread or unseen): a total and each room's (rooms at 0 omitted). */
export interface Counts {
  total: number;
  rooms: Record<string, number>;
}

/** `GET /v1/users/{user}/unread` and the answers of the mark-* requests. */
export interface Unread {
  /** Grows with every change of the user's counts; absent from older servers. */
  version?: number;
  total: number;
  rooms: Record<string, number>;
  /** Absent from older servers. */
  unseen?: Counts;
}

/** A message of the user's inbox. */
export interface Message {
  id: string;
  room_id: string;
  title: string;
  body: string;
  /** RFC 3339. */
  created_at: string;
  read: boolean;
  seen: boolean;
  archived: boolean;
  /** Absent when the message has none. */
  data?: Record<string, unknown>;
}

/** A page of `GET /v1/users/{user}/messages`, newest first. */
export interface MessagePage {
  messages: Message[];
  next_cursor: string | null;
}

export interface MessagesOptions {
  /** Only this room's messages. */
  room?: string;
  /** 1 to 100 (server default 20). */
  limit?: number;
  /** The previous page's `next_cursor`. */
  cursor?: string | null;
  /** true: archived only; false: unarchived only; absent: all. */
  archived?: boolean;
}

/** `{"error": {...}}` of a non-2xx answer or an error frame. */
export interface ErrorBody {
  code: string;
  message: string;
  field?: string;
}

/** One entry of an update frame's `changes`. Unknown kinds are ignored. */
export type Change =
  | { kind: 'message'; message: Message }
  | { kind: 'read'; room: string }
  | { kind: 'seen'; room: string; id?: string }
  | { kind: 'archived'; id: string; room: string; archived: boolean };

/** The counts after a change (authoritative) and what happened. */
export interface UpdateFrame {
  type: 'update';
  version: number;
  total: number;
  rooms: Record<string, number>;
  unseen?: Counts;
  changes: Change[];
  /**
   * true: the changes were dropped (the frame would have been too large) and `changes` is empty;
   * the counts are still authoritative. The client re-reads the newest page of messages.
   */
  truncated?: boolean;
}

export interface PongFrame {
  type: 'pong';
}

export interface ErrorFrame {
  type: 'error';
  error: ErrorBody;
}

/** A server → client frame. Unknown types are ignored. */
export type Frame = UpdateFrame | PongFrame | ErrorFrame;

// ---- client state ----

export interface UnreadCounts extends Counts {
  /** Equal to the unread counts when the server sends no `unseen`. */
  unseen: Counts;
}

/** What a subscription keeps; replaced, never mutated, on each change. */
export interface HeraldState {
  /** The version of the counts held; null until a versioned answer or frame arrived. */
  version: number | null;
  unread: UnreadCounts;
  /** Newest first (created_at, then id descending), archived ones included. */
  messages: Message[];
}

/** `'closed'` also while a subscription is stopped on a refused token (until `setToken`). */
export type Status = 'connecting' | 'open' | 'closed' | 'reconnecting';

export interface Backoff {
  /** Default 500. */
  initialMs?: number;
  /** Default 30000. */
  maxMs?: number;
}

// ---- injectable platform pieces ----

/** The part of `fetch` the client uses. */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string },
) => Promise<{ ok: boolean; status: number; text(): Promise<string> }>;

/** The part of `WebSocket` the client uses (it sets the on* handlers; `onmessage` reads `event.data`). */
export interface WebSocketLike {
  onopen: any;
  onmessage: any;
  onclose: any;
  onerror: any;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface WebSocketConstructorLike {
  new (url: string): WebSocketLike;
}

export interface HeraldClientOptions {
  /** Origin (and path prefix) of the HTTP API; default '' (the page's origin). */
  baseUrl?: string;
  /** The live feed's URL, e.g. `wss://host/live`; needed by `subscribe` only. */
  wsUrl?: string;
  /** The user's JWT. */
  token: string;
  /** The signed-in user's id. */
  user: string;
  fetch?: FetchLike;
  WebSocket?: WebSocketConstructorLike | null;
  /** Ping interval while open; default 300000 (the gateway closes connections idle for 10 minutes). */
  heartbeatMs?: number;
  backoff?: Backoff;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (id: any) => void;
  random?: () => number;
}

export interface SubscribeHandlers {
  onStatus?: (status: Status) => void;
  /** Every parsed frame, before it is applied. */
  onFrame?: (frame: Frame | Record<string, unknown>) => void;
  /**
   * `unauthorized` (the token was refused: the feed stopped, status `'closed'`, until `setToken`;
   * `status` is the 401 or 403 of the HTTP check), `connect_failed` (a socket that closed before
   * opening for another reason; retried with back-off), failed re-reads and error frames.
   */
  onError?: (error: HeraldError) => void;
}

export interface Subscription {
  close(): void;
}

// ---- herald.js ----

export declare const DEFAULT_HEARTBEAT_MS: 300000;
export declare const DEFAULT_BACKOFF: Readonly<Required<Backoff>>;
export declare const FIRST_PAGE_LIMIT: 20;

/** An error answered by herald, sent as an error frame, or met on the way (status 0). */
export declare class HeraldError extends Error {
  constructor(
    message: string,
    details?: { status?: number; code?: string; field?: string; body?: unknown; cause?: unknown },
  );
  readonly name: 'HeraldError';
  /** HTTP status; 0 without an HTTP answer (`network_error`, `connect_failed`, error frames). */
  status: number;
  /**
   * herald's code (`invalid_value`, `unauthorized`, …), or `http_error`, `network_error`,
   * `invalid_response`, `connect_failed`; from `subscribe`, `unauthorized` (status 401 or 403)
   * means the live feed's token was refused and the feed stopped.
   */
  code: string;
  field: string | undefined;
  body: unknown;
  static fromResponse(status: number, json: unknown, text?: string): HeraldError;
}

/** One user's inbox: HTTP methods and a live subscription keeping a {@link HeraldState}. */
export declare class HeraldClient {
  constructor(options: HeraldClientOptions);
  readonly user: string;
  readonly state: HeraldState;
  readonly status: Status;
  /**
   * Used by the next request and the next (re)connection; an open socket is kept. A subscription
   * stopped on a refused token connects again at once.
   */
  setToken(token: string): void;
  /** Also applied to the state (version rule). */
  unread(): Promise<Unread>;
  /** Does not change the state. */
  messages(options?: MessagesOptions): Promise<MessagePage>;
  markRoomRead(room: string): Promise<Unread>;
  markAllRead(): Promise<Unread>;
  markAllSeen(): Promise<Unread>;
  /** 1 to 100 ids. */
  markSeen(ids: string[]): Promise<Unread & { not_found: string[] }>;
  archive(ids: string[]): Promise<{ archived: string[]; not_found: string[] }>;
  unarchive(ids: string[]): Promise<{ unarchived: string[]; not_found: string[] }>;
  /**
   * Opens the live feed (shared by all subscribers; closed with the last) and keeps the state:
   * re-reads the counts and the newest 20 messages on every open (the first and each
   * reconnect) and after a `truncated` frame, applies frames, pings every `heartbeatMs`,
   * reconnects with back-off after closes it did not ask for. A socket that closes before
   * opening makes it check the token with `unread()`: a 401 or 403 stops it (status `'closed'`,
   * an `unauthorized` error) until `setToken`; anything else reports `connect_failed` and
   * reconnects. A subscriber joining a stopped subscription hears `'closed'` and that error.
   * Throws a TypeError without `wsUrl` or a WebSocket implementation.
   */
  subscribe(onState?: (state: HeraldState) => void, handlers?: SubscribeHandlers): Subscription;
}

/** The state before anything is known. */
export declare function initialState(): HeraldState;
/**
 * Counts replace the held ones only if newer (an Unread without version always replaces). Replaced
 * counts imply flags: held messages of a room at 0 unread (absent from `rooms`) become read and
 * seen; of a room at 0 unseen (when `unseen` is given), seen. Pure.
 */
export declare function applyUnread(state: HeraldState, unread: Unread): HeraldState;
/**
 * Applies an update frame: counts by the version rule, then its changes, then the flags replaced
 * counts imply. A stale frame (version lower than the held one) only adds messages and marks
 * single messages seen; its `read`, room-wide `seen` and `archived` changes are skipped. Anything
 * but an update frame returns `state`. Pure.
 */
export declare function applyFrame(state: HeraldState, frame: unknown): HeraldState;
/** Applies changes to the messages (all of them, no staleness check). Pure. */
export declare function applyChanges(state: HeraldState, changes: unknown[]): HeraldState;
/**
 * Merges a page read from the server: its copies replace the held ones, flags included (`read`,
 * `seen`, `archived` are the server's); unlisted messages are kept; newest first. Pure.
 */
export declare function mergeMessages(state: HeraldState, page: Message[]): HeraldState;
/** Newest first: created_at, then id descending. */
export declare function compareMessages(a: Message, b: Message): number;
/** `random() * min(maxMs, initialMs * 2 ** attempt)`. Pure given `random`. */
export declare function backoffDelay(attempt: number, backoff?: Backoff, random?: () => number): number;

// ---- herald-inbox.js (values declared in herald-inbox.d.ts) ----

export type BadgeKind = 'unread' | 'unseen';

export interface InboxViewOptions {
  badge?: BadgeKind;
  status?: Status;
  /** The feed stopped on a refused token (an `unauthorized` error): show "signed out". */
  unauthorized?: boolean;
  /** Epoch milliseconds; default Date.now(). */
  now?: number;
}

export interface InboxItem {
  id: string;
  room: string;
  title: string;
  body: string;
  createdAt: string;
  /** "now", "5m", "3h", "2d" or a date. */
  time: string;
  read: boolean;
  seen: boolean;
  className: 'read' | 'unread';
}

/** What `<herald-inbox>` shows for a state. */
export interface InboxView {
  /** The badge's number: the unread total, or the unseen total with badge="unseen". */
  count: number;
  badgeHidden: boolean;
  unreadTotal: number;
  unseenTotal: number;
  status: Status;
  /** Whether the feed stopped on a refused token. */
  signedOut: boolean;
  /** The status dot's and the host's `data-status`: `status`, or 'unauthorized' when signed out. */
  indicator: Status | 'unauthorized';
  /** "live", "connecting…", "reconnecting…", "offline", or "signed out". */
  statusText: string;
  /** The error line's text while signed out, else null. */
  notice: string | null;
  /** Archived messages left out. */
  items: InboxItem[];
  empty: boolean;
}

/** `<herald-inbox api ws user token badge>`. */
export interface HeraldInboxElement extends HTMLElement {
  /** A ready client to use instead of one built from the attributes. */
  client: HeraldClient | null;
  readonly state: HeraldState;
  readonly status: Status;
  /** Whether the panel is open. */
  readonly open: boolean;
  /** Opens or closes the panel; opening marks everything seen. */
  toggle(force?: boolean): void;
  addEventListener<K extends keyof HeraldInboxEventMap>(
    type: K,
    listener: (this: HeraldInboxElement, event: HeraldInboxEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject,
    options?: boolean | AddEventListenerOptions,
  ): void;
}

export interface HeraldInboxConstructor {
  new (): HeraldInboxElement;
  readonly prototype: HeraldInboxElement;
  readonly observedAttributes: string[];
}

export interface HeraldInboxEventMap extends HTMLElementEventMap {
  'herald-update': CustomEvent<HeraldState>;
  'herald-frame': CustomEvent<Frame | Record<string, unknown>>;
  'herald-error': CustomEvent<HeraldError | Error>;
}

declare global {
  interface HTMLElementTagNameMap {
    'herald-inbox': HeraldInboxElement;
  }
}
