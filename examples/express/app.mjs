// An Express app whose sessions live in auth-gateway: sign in, a protected page that is told
// the moment its session ends (whoever ends it), "sign out" and "sign out everywhere".
// Run it next to a gateway: see README.md in this folder.
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import { GatewaySessions, GatewaySessionError } from 'auth-gateway/middleware';
import { homePage, loginPage } from './views.mjs';

const host = process.env.HOST ?? '127.0.0.1';
const port = Number(process.env.PORT ?? 3000);
const origin = process.env.APP_ORIGIN ?? `http://${host}:${port}`; // where browsers reach this app
const gatewayUrl = process.env.GATEWAY_URL ?? 'ws://127.0.0.1:8080/'; // how this app reaches the gateway
const browserGatewayUrl = process.env.GATEWAY_PUBLIC_URL ?? gatewayUrl; // how browsers reach it

/** A bad set-up stops the app with one line, not a stack trace. */
const stop = (line) => {
  console.error(line);
  process.exit(1);
};
if (!process.env.GATEWAY_SERVICE_KEY) stop('GATEWAY_SERVICE_KEY is not set: give the app the key the gateway runs with (see README.md).');

const sessions = new GatewaySessions({
  url: gatewayUrl,
  serviceKey: process.env.GATEWAY_SERVICE_KEY,
  secure: origin.startsWith('https:'), // a Secure cookie needs https (plain http only on this machine)
  sameSite: 'Strict', // with the Origin check below: the CSRF defence
});

// The browser client comes with the package; served here at the paths it imports itself from.
const clientModule = fileURLToPath(import.meta.resolve('auth-gateway/client'));
const codesModule = join(dirname(clientModule), '..', '..', 'src', 'protocol', 'codes.js');

const app = express();
app.disable('x-powered-by');
app.use((req, res, next) => {
  res.set('content-security-policy', `default-src 'self'; connect-src 'self' ${new URL(browserGatewayUrl).origin}; frame-ancestors 'none'`);
  next();
});

// CSRF: the cookie is SameSite=Strict, and a state-changing request must come from a page of
// this origin (browsers send Origin with every POST; a request without it is refused).
app.use((req, res, next) => {
  if (req.method === 'GET' || req.method === 'HEAD' || req.get('origin') === origin) return next();
  res.status(403).type('text').send('Cross-origin request refused');
});
app.use(express.urlencoded({ extended: false, limit: '2kb' }));
app.use(sessions.middleware({ optional: true })); // req.session: the live session, or null

app.get('/login', (req, res) => (req.session ? res.redirect(303, '/') : res.type('html').send(loginPage())));

app.post('/login', async (req, res, next) => {
  const name = String(req.body?.name ?? '').trim();
  if (!/^[\w .@-]{1,64}$/.test(name)) return res.status(400).type('html').send(loginPage('A name of 1 to 64 letters, digits, spaces, dots, @ or dashes.'));
  try {
    if (req.session) await sessions.logout(req, res); // a new sign-in never reuses a session
    if (req.body?.via === 'idp') {
      // A simulated IdP sign-in: a real one hands the app its session id (`sid`) and subject in the ID token.
      const idpSid = randomBytes(16).toString('base64url');
      await sessions.login(res, { user_id: name, data: { idp_sid: idpSid }, idp_sid: idpSid, idp_sub: name });
    } else {
      await sessions.login(res, { user_id: name });
    }
    res.redirect(303, '/');
  } catch (err) {
    next(err);
  }
});

app.get('/', (req, res) => {
  if (!req.session) return res.redirect(303, '/login');
  res.set('cache-control', 'no-store');
  res.type('html').send(homePage({ user: req.session.user_id, idpSid: req.session.data?.idp_sid, gateway: browserGatewayUrl }));
});

// What the page's client asks before it reconnects: does this session still live?
app.get('/api/session', (req, res) => {
  res.set('cache-control', 'no-store');
  if (req.session) res.json({ user_id: req.session.user_id, expires_in: req.session.expires_in });
  else res.status(401).json({ error: 'Not signed in' });
});

app.post('/logout', async (req, res, next) => {
  try {
    await sessions.logout(req, res); // every page of this session is told
    res.redirect(303, '/login');
  } catch (err) {
    next(err);
  }
});

app.post('/logout-everywhere', async (req, res, next) => {
  if (!req.session) return res.redirect(303, '/login');
  try {
    await sessions.revokeUser(req.session.user_id); // every page of every session of this user is told, this one's too
    await sessions.logout(req, res); // clears this browser's cookie
    res.redirect(303, '/login');
  } catch (err) {
    next(err);
  }
});

app.get('/page.js', (req, res) => res.sendFile(fileURLToPath(new URL('page.js', import.meta.url))));
app.use('/client/src', express.static(dirname(clientModule), { index: false }));
app.get('/src/protocol/codes.js', (req, res) => res.sendFile(codesModule));

// The gateway could not be asked: fail closed, say so, never show the page. Anything else:
// logged here, a plain 500 to the browser (no stack trace).
app.use((err, req, res, _next) => {
  if (err instanceof GatewaySessionError)
    return res.status(503).set('retry-after', '1').type('text').send('The session service is unavailable; try again in a moment.');
  console.error(err);
  res
    .status(err.status ?? 500)
    .type('text')
    .send(err.expose ? err.message : 'Internal error');
});

console.log(`connecting to the gateway at ${gatewayUrl}…`);
// Retried until the gateway answers; a gateway that refuses the key stops the app (a bad set-up).
await sessions.ready().catch((err) => stop(`${err.message}.`));
app.listen(port, host, () => console.log(`example app listening at ${origin}`));
