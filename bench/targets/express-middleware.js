// Row 14's app: the app of express-peer.js with auth-gateway's middleware in place of
// express-session, set up as the README shows (one GatewaySessions, its middleware on the
// routes that need a session, its login helper); imported from dist/, as the rest of bench/
// imports the gateway. The gateway's URL is the second argument, its service key
// GATEWAY_SERVICE_KEY. GET /me is the session check: 200 with the user, or 401.
import express from 'express';
import { GatewaySessions } from '../../dist/middleware/src/index.js';

const [port, gatewayUrl] = process.argv.slice(2);
const sessions = new GatewaySessions({ url: String(gatewayUrl), serviceKey: process.env.GATEWAY_SERVICE_KEY ?? '', secure: false, sameSite: 'Strict' });
await sessions.ready();

/** The middleware's `req.session` (typed apart: the type check of bench/ also sees express-session's `req.session`, for the peers). */
const sessionOf = (req) => /** @type {import('../../dist/middleware/src/index.js').SessionRequest} */ (req).session;

const app = express();
app.post('/login', async (req, res, next) => {
  try {
    const user = String(req.query.user);
    await sessions.login(res, { user_id: user });
    res.json({ user });
  } catch (err) {
    next(err);
  }
});
app.get('/me', sessions.middleware(), (req, res) => {
  res.json({ user: sessionOf(req)?.user_id });
});
app.listen(Number(port), '127.0.0.1');
