import express from 'express';
import { GatewaySessions, GatewaySessionError } from 'auth-gateway/middleware';

const sessions = new GatewaySessions({
  url: process.env.GATEWAY_URL ?? 'ws://127.0.0.1:8080',
  serviceKey: process.env.GATEWAY_SERVICE_KEY,
  secure: process.env.NODE_ENV === 'production', // cookie `__Host-sid` with Secure; `sid` on plain-http localhost
});
await sessions.ready();

const app = express();
app.post('/login', express.urlencoded({ extended: false }), async (req, res) => {
  // Check the password first; this example takes any user name.
  await sessions.login(res, { user_id: String(req.body?.user ?? ''), data: { role: 'reader' }, ttl: 3600 }); // no name: 400
  res.redirect(303, '/me');
});
// 401 without a live session, 503 while the gateway cannot be asked; req.session = { user_id, data, expires_in }
app.get('/me', sessions.middleware(), (req, res) => res.json(req.session));
app.post('/promote', sessions.middleware(), async (req, res) => res.json(await sessions.regenerate(req, res, { data: { role: 'admin' } })));
app.post('/logout', async (req, res) => {
  await sessions.logout(req, res); // every page of the session is told
  res.sendStatus(204);
});
app.post('/logout-everywhere', sessions.middleware(), async (req, res) => {
  res.json({ ended: await sessions.revokeUser(req.session.user_id) });
});
// What a helper threw (Express 5 passes a rejected handler here), as an answer; never a stack trace.
app.use((err, req, res, _next) => {
  const code = err instanceof GatewaySessionError ? err.code : undefined;
  if (code === 'UNAVAILABLE') return res.status(503).set('retry-after', '1').type('text').send('Session service unavailable');
  if (code === 'NO_SESSION') return res.status(401).type('text').send('Not signed in'); // e.g. a second /promote of the same cookie
  if (code === 'REFUSED') return res.status(400).type('text').send(err.message); // names no session id
  console.error(err);
  res
    .status(err.status ?? 500)
    .type('text')
    .send(err.expose ? err.message : 'Internal error');
});
const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => console.log(`app listening at http://127.0.0.1:${server.address().port}`));
