// The peer of row 5: Express 5 + express-session + connect-redis 9 on the `redis` client,
// set up as their READMEs show (resave: false, saveUninitialized: false, a secret, a
// RedisStore with a prefix; the session regenerated at login). GET /me is the session
// check: 200 with the user, or 401.
import express from 'express';
import session from 'express-session';
import { RedisStore } from 'connect-redis';
import { createClient } from 'redis';

const [port, redisUrl, secret] = process.argv.slice(2);
const client = createClient({ url: redisUrl });
client.on('error', (err) => console.error('redis', err.message));
await client.connect();

const app = express();
app.use(
  session({
    store: new RedisStore({ client, prefix: 'peer:' }),
    resave: false,
    saveUninitialized: false,
    secret,
    cookie: { httpOnly: true, sameSite: 'strict', maxAge: 3_600_000 },
  }),
);
app.post('/login', (req, res, next) => {
  req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.user = String(req.query.user);
    res.json({ user: req.session.user });
  });
});
app.get('/me', (req, res) => {
  if (req.session.user) res.json({ user: req.session.user });
  else res.sendStatus(401);
});
app.listen(Number(port), '127.0.0.1');
