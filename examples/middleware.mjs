import express from 'express';
import { GatewaySessions } from 'auth-gateway/middleware';

const sessions = new GatewaySessions({
  url: process.env.GATEWAY_URL ?? 'ws://127.0.0.1:8080',
  serviceKey: process.env.GATEWAY_SERVICE_KEY,
  secure: process.env.NODE_ENV === 'production', // cookie `__Host-sid` with Secure; `sid` on plain-http localhost
});
await sessions.ready();

const app = express();
app.post('/login', express.urlencoded({ extended: false }), async (req, res) => {
  // Check the password first; this example takes any user name.
  await sessions.login(res, { user_id: String(req.body.user), data: { role: 'reader' }, ttl: 3600 });
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
const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => console.log(`app listening at http://127.0.0.1:${server.address().port}`));
