// The PostgreSQL peer of row 13: Express 5 + express-session + connect-pg-simple 10 on a
// `pg` Pool, set up as their READMEs show (resave: false, saveUninitialized: false, a
// secret, the store creating its table; the session regenerated at login), the same app
// as express-peer.js. GET /me is the session check: 200 with the user, or 401.
import express from 'express';
import session from 'express-session';
import connectPgSimple from 'connect-pg-simple';
import pg from 'pg';

const [port, postgresUrl, secret] = process.argv.slice(2);
const pool = new pg.Pool({ connectionString: postgresUrl });
pool.on('error', (err) => console.error('postgres', err.message));
const PgStore = connectPgSimple(session);

const app = express();
app.use(
  session({
    store: new PgStore({ pool, tableName: 'session', createTableIfMissing: true }),
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
