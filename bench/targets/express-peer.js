// The peer of rows 5 and 13: Express 5 + express-session on the store the URL names, set up
// as their READMEs show (resave: false, saveUninitialized: false, a secret; the session
// regenerated at login): connect-redis 9 on the `redis` client (a RedisStore with a prefix)
// for redis://, connect-pg-simple 10 on a `pg` Pool (the store creating its table) for
// postgres://. GET /me is the session check: 200 with the user, or 401.
//   node express-peer.js PORT STORE_URL SECRET
import express from 'express';
import session from 'express-session';

const [port, storeUrl, secret] = process.argv.slice(2);

/** The session store of `url`; only its own client library is loaded. @param {string} url */
async function storeOf(url) {
  if (url.startsWith('redis://')) {
    const [{ RedisStore }, { createClient }] = await Promise.all([import('connect-redis'), import('redis')]);
    const client = createClient({ url });
    client.on('error', (err) => console.error('redis', err.message));
    await client.connect();
    return new RedisStore({ client, prefix: 'peer:' });
  }
  if (url.startsWith('postgres://')) {
    const [{ default: connectPgSimple }, { default: pg }] = await Promise.all([import('connect-pg-simple'), import('pg')]);
    const pool = new pg.Pool({ connectionString: url });
    pool.on('error', (err) => console.error('postgres', err.message));
    const PgStore = connectPgSimple(session);
    return new PgStore({ pool, tableName: 'session', createTableIfMissing: true });
  }
  throw new Error(`express-peer: no session store for ${url.split(':')[0]}`);
}

const app = express();
app.use(
  session({
    store: await storeOf(String(storeUrl)),
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
