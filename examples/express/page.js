// The protected page's script: follows this browser's session over the gateway's WebSocket
// and shows its end the moment the gateway pushes it. The app serves the client module
// (from the installed auth-gateway package) at the path the gateway would.
import { TabSession } from '/client/src/index.js';

const $ = (id) => document.getElementById(id);
const status = $('connection');
const notice = $('notice');

const tabs = new TabSession({
  url: document.body.dataset.gateway,
  // Before each reconnect: does the app still know this session? (An end while no socket was open.)
  // Only a 401 says it ended. Anything else (the app's 503 while the gateway is down, a network
  // error) throws: the client then learns nothing, rather than showing an end that did not happen.
  checkSession: async () => {
    const res = await fetch('/api/session', { cache: 'no-store' });
    if (res.status === 401) return false;
    if (!res.ok) throw new Error(`GET /api/session: ${res.status}`);
    return true;
  },
});
tabs.on('open', () => (status.textContent = 'following your session'));
tabs.on('close', ({ willReconnect }) => willReconnect && (status.textContent = 'reconnecting…'));
tabs.on('session_expiring', ({ expiresIn }) => (status.textContent = `your session ends in ${expiresIn} s`));
tabs.on('session_expired', ({ reason, pushed }) => {
  notice.dataset.shownAt = String(Date.now()); // when the end was on the page (the e2e test reads it)
  notice.dataset.reason = reason;
  notice.textContent = `Your session ended (${reason})${pushed ? ', pushed by the gateway' : ''}. Sign in again to go on.`;
  notice.hidden = false;
  status.textContent = 'signed out';
  for (const b of document.querySelectorAll('form.signed-in button')) b.disabled = true;
});
tabs.start({ session: true }); // the app set the cookie when this user signed in
