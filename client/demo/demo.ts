import { GatewayClient } from '../src/index.js';

/**
 * The demo page: dev login, the user, a live countdown, and the notice the gateway pushes
 * when the session ends. The countdown is only a display: the notice appears when the push
 * arrives, which is what the page would trust in a real app.
 */

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const connection = $('connection');
const user = $('user');
const countdown = $('countdown');
const ttl = $<HTMLInputElement>('ttl');
const loginButton = $<HTMLButtonElement>('login');
const logoutButton = $<HTMLButtonElement>('logout');
const warning = $('warning');
const notice = $('notice');
const log = $('log');

interface Me {
  user_id: string;
  expires_in_ms: number;
}

let deadline: number | undefined;
let ticker: ReturnType<typeof setInterval> | undefined;

function note(text: string): void {
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  log.prepend(li);
  while (log.childElementCount > 20) log.lastElementChild?.remove();
}

function showUser(me: Me | undefined): void {
  clearInterval(ticker);
  ticker = undefined;
  logoutButton.disabled = me === undefined;
  if (me === undefined) {
    user.textContent = 'not logged in';
    countdown.textContent = '–';
    deadline = undefined;
    return;
  }
  user.textContent = me.user_id;
  deadline = performance.now() + me.expires_in_ms;
  const tick = () => {
    const left = Math.max(0, (deadline ?? 0) - performance.now());
    countdown.textContent = `${(left / 1000).toFixed(1)} s`;
  };
  tick();
  ticker = setInterval(tick, 100);
}

async function whoAmI(): Promise<Me | undefined> {
  const r = await fetch('/autosession', { credentials: 'same-origin' });
  return r.status === 200 ? ((await r.json()) as Me) : undefined;
}

const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
const client = new GatewayClient({ url: wsUrl, reconnect: { initialDelayMs: 500, maxDelayMs: 10_000 } });

client.on('open', ({ reconnected }) => {
  // With a session, the gateway bound this socket to it (the cookie went with the upgrade).
  connection.textContent = deadline !== undefined ? 'open, bound to your session' : reconnected ? 'open (reconnected)' : 'open';
  connection.dataset.state = 'open';
});
client.on('close', ({ code, willReconnect }) => {
  connection.textContent = `closed (${code})${willReconnect ? ', reconnecting…' : ''}`;
  connection.dataset.state = 'closed';
  note(`connection closed with ${code}`);
});
client.on('session_expiring', ({ expiresIn }) => {
  warning.textContent = `Your session ends in ${expiresIn} s (warning pushed by the gateway).`;
  warning.hidden = false;
  note(`push: session_expiring, ${expiresIn} s left`);
});
client.on('session_expired', ({ reason, bound }) => {
  if (!bound) return;
  const at = new Date().toLocaleTimeString();
  warning.hidden = true;
  notice.textContent = `Session ended (reason: ${reason}). Pushed by the gateway at ${at}; no reload, no polling.`;
  notice.hidden = false;
  notice.dataset.reason = reason;
  showUser(undefined);
  countdown.textContent = 'ended';
  note(`push: session_expired, reason ${reason}`);
});

async function login(): Promise<void> {
  loginButton.disabled = true;
  try {
    // Drop the socket first: it may be bound to the session this login replaces.
    client.close();
    const seconds = Number(ttl.value) || 30;
    const r = await fetch(`/autosession?ttl=${encodeURIComponent(String(seconds))}`, { method: 'POST', credentials: 'same-origin' });
    if (!r.ok) throw new Error(`dev login failed: HTTP ${r.status} ${(await r.text()).slice(0, 200)}`);
    const me = (await r.json()) as Me;
    notice.hidden = true;
    warning.hidden = true;
    showUser(me);
    note(`logged in as ${me.user_id} for ${seconds} s`);
    // The new socket carries the new cookie: the gateway binds it to the session.
    await client.connect();
  } catch (err) {
    note(String(err instanceof Error ? err.message : err));
  } finally {
    loginButton.disabled = false;
  }
}

async function logout(): Promise<void> {
  // The gateway ends the session and pushes session_expired (destroyed) to this page.
  await fetch('/autosession', { method: 'DELETE', credentials: 'same-origin' });
}

loginButton.addEventListener('click', () => void login());
logoutButton.addEventListener('click', () => void logout());

void (async () => {
  const me = await whoAmI().catch(() => undefined);
  showUser(me);
  if (me !== undefined) note(`session of ${me.user_id} found`);
  await client.connect().catch((err: unknown) => note(String(err)));
})();
