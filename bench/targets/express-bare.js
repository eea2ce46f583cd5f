// Row 15's floor: the app of express-peer.js and express-middleware.js with no session at
// all. POST /login sets a cookie naming the user; GET /me answers whoever the cookie names,
// unchecked (what the two others cost beyond this is the price of checking).
import express from 'express';

const [port] = process.argv.slice(2);

const app = express();
app.post('/login', (req, res) => {
  const user = String(req.query.user);
  res.cookie('user', user, { httpOnly: true, sameSite: 'strict' }).json({ user });
});
app.get('/me', (req, res) => {
  const m = /(?:^|;\s*)user=([^;]*)/.exec(req.headers.cookie ?? '');
  if (m) res.json({ user: decodeURIComponent(m[1] ?? '') });
  else res.sendStatus(401);
});
app.listen(Number(port), '127.0.0.1');
