import { TabSession, type TabEvents } from '../src/index.js';

/**
 * The demo page: dev login, the user, a live countdown, the warning with its own countdown,
 * and the end the gateway pushes. All tabs of the browser share one WebSocket (TabSession):
 * one tab holds it, the others are told everything through a BroadcastChannel. The countdown
 * is only a display: the end is shown when the gateway says so.
 */

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const connection = $('connection');
const role = $('role');
const user = $('user');
const countdown = $('countdown');
const ttl = $<HTMLInputElement>('ttl');
const loginButton = $<HTMLButtonElement>('login');
const logoutButton = $<HTMLButtonElement>('logout');
const warning = $('warning');
const warningText = $('warning-text');
const extendButton = $<HTMLButtonElement>('extend');
const notice = $('notice');
const log = $('log');

/** Where the last end is kept, so that a reload still shows it (the page had a session). */
const ENDED_KEY = 'auth-gateway-demo:ended';

interface Me {
  user_id: string;
  expires_in_ms: number;
}

interface Ended {
  reason: string;
  pushed: boolean;
  at: number;
}

let deadline: number | undefined;
let warnDeadline: number | undefined;
let signedIn = false;
/** The page's session ended (shown in the notice) since it last had one. */
let ended = false;

const clock = (t: number) => new Date(t).toLocaleTimeString();

/** Adds a line to the event log, oldest first: time, a label (what kind of event), the text. */
function note(label: 'push' | 'connection' | 'tabs' | 'you' | 'page', text: string): void {
  const li = document.createElement('li');
  const time = document.createElement('time');
  time.textContent = clock(Date.now());
  const tag = document.createElement('span');
  tag.className = `tag tag-${label}`;
  tag.textContent = label;
  li.append(time, ' ', tag, ' ', text);
  log.append(li);
  while (log.childElementCount > 50) log.firstElementChild?.remove();
}

function tick(): void {
  const now = performance.now();
  countdown.textContent =
    deadline === undefined ? (countdown.dataset.ended === 'true' ? 'ended' : '–') : `${(Math.max(0, deadline - now) / 1000).toFixed(1)} s`;
  if (warnDeadline !== undefined) warningText.textContent = `Your session ends in ${(Math.max(0, warnDeadline - now) / 1000).toFixed(1)} s.`;
}
setInterval(tick, 100);

function showUser(me: Me | undefined): void {
  signedIn = me !== undefined;
  logoutButton.disabled = !signedIn;
  user.textContent = me?.user_id ?? 'not logged in';
  deadline = me === undefined ? undefined : performance.now() + me.expires_in_ms;
  if (me !== undefined) {
    ended = false;
    countdown.dataset.ended = 'false';
    localStorage.removeItem(ENDED_KEY);
    notice.hidden = true;
  }
  tick();
}

/** Counts the ends shown: an answer of the backend asked for before the latest one is stale. */
let endsShown = 0;

/** Shows `me` unless an end was shown after the question was asked (its answer predates the end). */
function showUserAsOf(asked: number, me: Me | undefined): void {
  if (asked === endsShown && me !== undefined) showUser(me);
}

function showEnded(e: Ended, now: boolean): void {
  endsShown++;
  warnDeadline = undefined;
  warning.hidden = true;
  showUser(undefined);
  ended = true;
  countdown.dataset.ended = 'true';
  tick();
  const how = !now
    ? `at ${clock(e.at)}, before this page was loaded.`
    : e.pushed
      ? `Pushed by the gateway at ${clock(e.at)}; no reload, no polling.`
      : `Found at ${clock(e.at)} on reconnecting: it ended while this page was not connected.`;
  notice.textContent = `Session ended (reason: ${e.reason}). ${how}`;
  notice.dataset.reason = e.reason;
  notice.hidden = false;
}

/**
 * Who the cookie's session belongs to; undefined when the backend says nobody is logged in (204).
 * Any other answer (a 503 while the gateway's store is away) or none at all says nothing about
 * the session: it throws.
 */
async function whoAmI(): Promise<Me | undefined> {
  const r = await fetch('/autosession', { credentials: 'same-origin', signal: AbortSignal.timeout(3000) });
  if (r.status === 204) return undefined;
  if (r.status !== 200) throw new Error(`GET /autosession: HTTP ${r.status}`);
  return (await r.json()) as Me;
}

/** The close code in words, for the connection line. */
function describeClose({ code, reason, kind, willReconnect }: TabEvents['close']): string {
  if (kind === 'ended' && willReconnect) return 'session regenerated: waiting for the new cookie…';
  if (kind === 'ended') return signedIn || ended ? 'closed: your session ended' : 'closed: no live session for this browser';
  if (kind === 'regenerated') return 'session regenerated: rebinding with the new cookie…';
  const why: Record<number, string> = {
    1000: 'closed',
    1001: 'the gateway is going away (restart or deploy)',
    1006: reason === 'heartbeat timeout' ? 'connection lost (no answer to the heartbeat)' : 'connection lost',
    1008: 'refused by policy',
    1011: 'the gateway hit an internal error',
    1012: 'the gateway is restarting',
    1013: 'the gateway is busy',
  };
  return `${why[code] ?? `closed (code ${code})`}${willReconnect ? ': reconnecting…' : ''}`;
}

function setConnection(text: string, state: string): void {
  connection.textContent = text;
  connection.dataset.state = state;
}

const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
const tabs = new TabSession({
  url: wsUrl,
  reconnect: { initialDelayMs: 500, maxDelayMs: 10_000 },
  // A silent path is noticed within 8 s (the library's default is 30 s).
  heartbeat: { intervalMs: 5000, timeoutMs: 3000 },
  // The page cannot read its HttpOnly cookie: it asks the backend whether the session lives.
  // No answer, or one that is not "nobody" or a user, throws: the client then learns nothing.
  checkSession: async () => (await whoAmI()) !== undefined,
});

tabs.on('leader', ({ leader }) => {
  role.textContent = leader ? 'this tab holds the WebSocket' : 'through the tab that holds it';
  note('tabs', leader ? 'this tab now holds the WebSocket' : 'this tab no longer holds the WebSocket');
});
tabs.on('open', ({ reconnected }) => {
  if (!tabs.isLeader) role.textContent = 'through the tab that holds it';
  note('connection', reconnected ? 'reconnected' : 'connected');
  // A login in another tab, or a regeneration, changed the cookie: show whose session it is now.
  const asked = endsShown;
  void whoAmI().then(
    (me) => {
      if (!tabs.connected) return; // closed meanwhile (a stale cookie is closed at once): that close says it
      showUserAsOf(asked, me);
      setConnection(me !== undefined ? 'open, bound to your session' : 'open (no session)', 'open');
    },
    (err: unknown) => {
      if (tabs.connected) setConnection('open', 'open');
      note('page', `could not ask who is logged in: ${err instanceof Error ? err.message : String(err)}`);
    },
  );
});
tabs.on('close', (c) => {
  setConnection(describeClose(c), c.willReconnect ? 'reconnecting' : 'closed');
  note('connection', `${describeClose(c)} (close code ${c.code})`);
});
tabs.on('reconnecting', ({ attempt, delayMs }) => {
  setConnection(`reconnecting in ${(delayMs / 1000).toFixed(1)} s…`, 'reconnecting');
  note('connection', `reconnecting, attempt ${attempt}, in ${delayMs} ms`);
});
tabs.on('session_expiring', ({ bound, expiresIn }) => {
  if (!bound) return;
  warnDeadline = performance.now() + expiresIn * 1000;
  warning.hidden = false;
  tick();
  note('push', `session_expiring: ${expiresIn} s left`);
});
tabs.on('session_extended', ({ bound, expiresIn }) => {
  if (!bound) return;
  warnDeadline = undefined;
  warning.hidden = true;
  note('push', `session_extended: ${expiresIn} s left`);
  // The push has whole seconds; the backend has the end to the millisecond.
  const asked = endsShown;
  void whoAmI().then(
    (me) => showUserAsOf(asked, me),
    () => undefined, // the countdown keeps the push's figure
  );
});
tabs.on('session_regenerated', () => {
  note('push', 'session regenerated: same session, new cookie; waiting for it');
});
tabs.on('session_expired', ({ bound, reason, pushed }) => {
  if (!bound) return;
  const e: Ended = { reason, pushed, at: Date.now() };
  localStorage.setItem(ENDED_KEY, JSON.stringify(e));
  showEnded(e, true);
  note(pushed ? 'push' : 'connection', `session ended, reason ${reason}${pushed ? '' : ' (learned on reconnecting, not pushed)'}`);
});

async function login(): Promise<void> {
  loginButton.disabled = true;
  try {
    const seconds = Number(ttl.value) || 30;
    const r = await fetch(`/autosession?ttl=${encodeURIComponent(String(seconds))}`, { method: 'POST', credentials: 'same-origin' });
    if (!r.ok) throw new Error(`dev login failed: HTTP ${r.status} ${(await r.text()).slice(0, 200)}`);
    const me = (await r.json()) as Me;
    warnDeadline = undefined;
    warning.hidden = true;
    showUser(me);
    note('you', `logged in as ${me.user_id} for ${seconds} s`);
    // The socket must carry the new cookie: the tab that holds it reconnects, bound to it.
    tabs.reconnect({ session: true });
  } catch (err) {
    note('page', String(err instanceof Error ? err.message : err));
  } finally {
    loginButton.disabled = false;
  }
}

async function extend(): Promise<void> {
  extendButton.disabled = true;
  note('you', 'asked to stay signed in');
  try {
    // Sent over the one socket (through the tab that holds it); every tab is told by the push.
    const r = await tabs.extendSession();
    if (r.type !== 'session_extended') note('page', `could not extend: ${r.error}`);
  } catch (err) {
    note('page', String(err instanceof Error ? err.message : err));
  } finally {
    extendButton.disabled = false;
  }
}

async function logout(): Promise<void> {
  note('you', 'asked to end the session');
  // The gateway ends the session and pushes session_expired (destroyed) to every tab.
  await fetch('/autosession', { method: 'DELETE', credentials: 'same-origin' });
}

loginButton.addEventListener('click', () => void login());
logoutButton.addEventListener('click', () => void logout());
extendButton.addEventListener('click', () => void extend());

void (async () => {
  let me: Me | undefined;
  let known = true;
  try {
    me = await whoAmI();
  } catch (err) {
    known = false; // the socket, once open, says whether it is bound
    note('page', `could not ask who is logged in: ${err instanceof Error ? err.message : String(err)}`);
  }
  showUser(me);
  if (me !== undefined) note('page', `session of ${me.user_id} found`);
  else if (known) {
    // A stale cookie is no session; an end this browser saw before the reload is shown again.
    const kept = localStorage.getItem(ENDED_KEY);
    if (kept !== null) showEnded(JSON.parse(kept) as Ended, false);
  }
  tabs.start(known ? { session: me !== undefined } : {});
})();
