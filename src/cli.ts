#!/usr/bin/env node
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { createApp } from './app.js';
import { resolveFileVars } from './config-files.js';
import { effectiveConfig } from './config-view.js';
import { loadConfig, namingGiven, refuseEmpty, type Config } from './config.js';
import { ConfigError } from './errors.js';
import { createLogger, type Logger } from './log.js';
import { takeStopSignals } from './stop-signals.js';
import { checkTracingEnv, startTracing, stopTracing } from './tracing.js';
import { runStdio } from './transports/stdio.js';
import { VERSION } from './version.js';

const USAGE = `usage: auth-gateway <command> [options]

commands:
  serve              WebSocket and HTTP gateway (GATEWAY_HOST:GATEWAY_PORT)
  stdio              JSON lines on stdin/stdout
  connect URL        bridge stdin/stdout to a running gateway; as a service with the key
                     in GATEWAY_SERVICE_KEY(_FILE) or in a file: --service-key-file FILE
  config             print the effective configuration of serve (secrets redacted) and exit
  schema             print the JSON Schema of every message
  openapi            print the OpenAPI 3.1 document of the HTTP API (/v1/rpc, /oauth2/*)

options (each also a GATEWAY_* variable; flags win):
  --fixtures FILE    seed sessions from FILE (tests and demos only)
  --store URL        memory:// (default), redis://host:port[/db] or postgres://user@host/db
  --host H --port P  listen address of serve
  --node-id ID       src of this node's pushes
  --log-level L      fatal|error|warn|info|debug|trace|silent
  --session-ttl S    default session lifetime, seconds (GATEWAY_SESSION_TTL)
  --max-message-bytes N  largest line or frame served (GATEWAY_MAX_MESSAGE_BYTES)
  --service-key-file FILE  serve: the service key (GATEWAY_SERVICE_KEY_FILE); connect: the key to present
  --oidc-issuer ISS --oidc-audience AUD --oidc-jwks URL|FILE
                     serve: accept the IdP's back-channel logout (all three or none)
  --introspection-keys-file FILE  serve: keys of POST /oauth2/introspect and /oauth2/revoke
                     only, comma-separated (GATEWAY_INTROSPECTION_KEYS_FILE)
  --dev              enable POST /autosession (dev login; never in production)
  --version          print the version and exit

secrets may be given as files: GATEWAY_JWT_SECRET_FILE, GATEWAY_JWT_SECRETS_FILE,
GATEWAY_SERVICE_KEY_FILE, GATEWAY_INTROSPECTION_KEYS_FILE, GATEWAY_STORE_FILE,
GATEWAY_LOG_SALT_FILE.
`;

/** Flags that stand for GATEWAY_* variables. */
const FLAG_ENV: Record<string, string> = {
  fixtures: 'GATEWAY_FIXTURES',
  store: 'GATEWAY_STORE',
  host: 'GATEWAY_HOST',
  port: 'GATEWAY_PORT',
  'node-id': 'GATEWAY_NODE_ID',
  'log-level': 'GATEWAY_LOG_LEVEL',
  'session-ttl': 'GATEWAY_SESSION_TTL',
  'max-message-bytes': 'GATEWAY_MAX_MESSAGE_BYTES',
  'service-key-file': 'GATEWAY_SERVICE_KEY_FILE',
  'oidc-issuer': 'GATEWAY_OIDC_ISSUER',
  'oidc-audience': 'GATEWAY_OIDC_AUDIENCE',
  'oidc-jwks': 'GATEWAY_OIDC_JWKS',
  'introspection-keys-file': 'GATEWAY_INTROSPECTION_KEYS_FILE',
};

/** The flags each command applies; any other is refused, never silently ignored. */
const COMMAND_FLAGS: Record<string, ReadonlySet<string>> = {
  serve: new Set([...Object.keys(FLAG_ENV), 'dev']),
  config: new Set([...Object.keys(FLAG_ENV), 'dev']),
  stdio: new Set(['fixtures', 'store', 'node-id', 'log-level', 'session-ttl', 'max-message-bytes']),
  connect: new Set(['service-key-file']),
  schema: new Set(),
  openapi: new Set(),
};

/** Positional arguments after the command (one only: `connect`'s URL). */
const COMMAND_ARGS: Record<string, number> = { serve: 0, config: 0, stdio: 0, connect: 1, schema: 0, openapi: 0 };

/** A usage error: one line on stderr, exit 2 (node:util's messages of several lines joined into one). */
function fail(message: string, code = 2): never {
  process.stderr.write(`auth-gateway: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(code);
}

const SEE_HELP = '(auth-gateway --help lists the commands and their options)';

/**
 * A fatal start-up error: one JSON line on stderr, shaped like every log line (level
 * `fatal`, `msg`, and `err` with type and stack when it is not a configuration error, whose
 * message is the whole story), so log pipelines read it like the rest.
 */
function fatal(err: unknown): never {
  const line: Record<string, unknown> = { level: 'fatal', time: new Date().toISOString(), svc: 'auth-gateway', pid: process.pid, hostname: hostname() };
  if (err instanceof ConfigError) {
    line.msg = namingGiven(err.message, flagsGiven);
  } else {
    line.msg = 'fatal: could not start';
    line.err = pino.stdSerializers.errWithCause(err instanceof Error ? err : new Error(String(err)));
  }
  process.stderr.write(`${JSON.stringify(line)}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
}

/**
 * Writes what a one-shot command prints (a document, the usage, the version). A reader that
 * went away (EPIPE: `auth-gateway schema | head -1`) has had what it wanted: the command ends
 * with 0, as `stdio` does, instead of an unhandled error and its stack.
 */
function print(text: string): Promise<void> {
  return new Promise<void>((resolve) => {
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
      fatal(err);
    });
    process.stdout.write(text, () => resolve());
  });
}

/** The variables set by a flag of this command line, as [`--flag`, variable] (NAME and NAME_FILE alike). */
const flagsGiven: [string, string][] = [];

function configFrom(values: Record<string, string | boolean | undefined>): Config {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const [flag, name] of Object.entries(FLAG_ENV)) {
    const v = values[flag];
    if (typeof v !== 'string') continue;
    const base = name.endsWith('_FILE') ? name.slice(0, -'_FILE'.length) : name;
    flagsGiven.push([`--${flag}`, name], [`--${flag}`, base]);
    // The flag wins over its variable in either form (NAME or NAME_FILE).
    env[name] = v;
    delete env[name === base ? `${name}_FILE` : base];
  }
  if (values.dev === true) env.GATEWAY_DEV = '1';
  return loadConfig(env);
}

/**
 * The service key of `connect`: from GATEWAY_SERVICE_KEY(_FILE) or --service-key-file, never
 * from argv, where every local user could read it in the process list.
 */
function serviceKeyOf(values: Record<string, string | boolean | undefined>): string | undefined {
  const env: Record<string, string | undefined> = {
    GATEWAY_SERVICE_KEY: process.env.GATEWAY_SERVICE_KEY,
    GATEWAY_SERVICE_KEY_FILE: process.env.GATEWAY_SERVICE_KEY_FILE,
  };
  const file = values['service-key-file'];
  if (typeof file === 'string') {
    // The flag wins over the variable in either form, as in serve.
    env.GATEWAY_SERVICE_KEY = undefined;
    env.GATEWAY_SERVICE_KEY_FILE = file;
  }
  try {
    refuseEmpty(env, ['GATEWAY_SERVICE_KEY', 'GATEWAY_SERVICE_KEY_FILE']);
    return resolveFileVars(env).GATEWAY_SERVICE_KEY;
  } catch (err) {
    if (err instanceof ConfigError)
      fail(err.message.replace('GATEWAY_SERVICE_KEY_FILE', typeof file === 'string' ? '--service-key-file' : 'GATEWAY_SERVICE_KEY_FILE'));
    throw err;
  }
}

/**
 * What `serve` checks at start beyond the variables themselves, without opening anything:
 * the tracing variables, the Ed25519 key files and the fixture file. So `config` refuses
 * exactly what `serve` would.
 */
async function checkStartup(config: Config): Promise<void> {
  checkTracingEnv(process.env);
  if (config.jwtAlg === 'EdDSA') (await import('./tokens/ed25519-keys.js')).loadEd25519Keys(config.jwtEd25519KeyFiles);
  if (config.fixtures !== undefined) await (await import('./fixtures.js')).readFixtures(config.fixtures);
}

async function stdio(config: Config, log: Logger, signals: ReturnType<typeof takeStopSignals>): Promise<void> {
  const { gateway } = await createApp(config, { log });
  // SIGTERM or SIGINT: as the input's end (what was read is answered, then exit 0); a second exits at once.
  const stop = new AbortController();
  signals.running({
    secondSignal: 'second signal: exiting without answering the requests read',
    onStop: (signal) => {
      log.info({ signal }, 'stopping: answering the requests read, reading no more');
      stop.abort();
    },
  });
  await runStdio(gateway, process.stdin, process.stdout, { maxMessageBytes: config.maxMessageBytes, signal: stop.signal });
  await stopTracing();
  // Everything read has been answered: exit now, whatever timers or sockets remain.
  process.exit(0);
}

/** The logger of `serve` and `stdio`, and their stop signals, taken from here on. */
function runningCommand(config: Config): { log: Logger; signals: ReturnType<typeof takeStopSignals> } {
  const log = createLogger(config.logLevel, undefined, { node: config.nodeId });
  return { log, signals: takeStopSignals(log) };
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      tokens: true,
      options: {
        ...Object.fromEntries(Object.keys(FLAG_ENV).map((f) => [f, { type: 'string' as const }])),
        dev: { type: 'boolean' },
        'service-key': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (err) {
    // The option is quoted only when it looks like an option name: a key starting with `-`,
    // given where an argument goes, would be quoted whole.
    const option = /^Unknown option '([^']*)'/.exec((err as Error).message)?.[1];
    if (option !== undefined && !/^--?[a-z][a-z0-9-]{0,39}$/.test(option))
      fail(`an argument starting with - is not an option this command knows (not shown: it may be a key) ${SEE_HELP}`);
    fail(`${(err as Error).message} ${SEE_HELP}`);
  }
  // Given twice, the last would win without a word (a templated `--store memory://` followed by
  // an appended `--store redis://...`): refused instead.
  const seen = new Set<string>();
  for (const token of parsed.tokens) {
    if (token.kind !== 'option') continue;
    if (seen.has(token.name)) fail(`--${token.name} is given more than once: give each option once`);
    seen.add(token.name);
  }
  if (parsed.values.version) {
    await print(`auth-gateway ${VERSION}\n`);
    process.exit(0);
  }
  const [command, ...rest] = parsed.positionals;
  if (parsed.values.help) {
    await print(USAGE);
    process.exit(0);
  }
  if (command === undefined) {
    // Nothing asked: the usage itself, on stderr, as a usage error.
    process.stderr.write(`auth-gateway: a command is needed\n${USAGE}`);
    process.exit(2);
  }
  if (parsed.values['service-key'] !== undefined) {
    fail('--service-key is refused: a key on the command line shows in the process list (ps); set GATEWAY_SERVICE_KEY(_FILE) or use --service-key-file FILE');
  }
  const store = (parsed.values as Record<string, string | boolean | undefined>).store;
  // As --service-key: a password on the command line shows in the process list. The userinfo
  // runs to the authority's last `@` (a password may hold one, as drivers accept).
  if (typeof store === 'string' && (/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*:[^/?#]*@/i.test(store) || /[?&;]password=/i.test(store))) {
    fail('--store is refused with a password in its URL: a command line shows in the process list (ps); set GATEWAY_STORE or GATEWAY_STORE_FILE');
  }
  const flags = COMMAND_FLAGS[command];
  // Not quoted, as no argument is: it may be a key pasted in the wrong place.
  if (flags === undefined) fail(`unknown command: the first argument must be serve, stdio, connect, config, schema or openapi ${SEE_HELP}`);
  for (const [flag, value] of Object.entries(parsed.values)) {
    if (value !== undefined && !flags.has(flag)) fail(`--${flag} does not apply to ${command}`);
  }
  for (const [flag, value] of Object.entries(parsed.values)) {
    if (typeof value !== 'string' || value.trim() !== '') continue;
    // Never read as "not given": the default would silently overrule the variable.
    const name = FLAG_ENV[flag]!;
    const variable = name.endsWith('_FILE') ? `${name.slice(0, -'_FILE'.length)}(_FILE)` : name;
    const message = `--${flag} is given but empty: leave it out to use ${variable} or the default`;
    if (command === 'connect') fail(message);
    fatal(new ConfigError(message));
  }
  const wanted = COMMAND_ARGS[command]!;
  // Counted, never quoted: `connect URL KEY` would put the key on stderr.
  if (rest.length > wanted) fail(`${command} takes ${wanted === 0 ? 'no arguments' : `${wanted} argument, the URL`} (${rest.length} given)`);
  switch (command) {
    case 'stdio': {
      const config = configFrom(parsed.values);
      const { log, signals } = runningCommand(config);
      await startTracing(process.env, config.nodeId);
      return stdio(config, log, signals);
    }
    case 'serve': {
      const config = configFrom(parsed.values);
      const running = runningCommand(config);
      await startTracing(process.env, config.nodeId);
      const { serve } = await import('./server.js');
      return serve(config, running);
    }
    case 'config': {
      const config = configFrom(parsed.values);
      await checkStartup(config);
      return print(`${JSON.stringify(effectiveConfig(config), null, 2)}\n`);
    }
    case 'connect': {
      const url = rest[0];
      if (!url) fail('connect needs a URL, e.g. ws://127.0.0.1:8080');
      const { connect } = await import('./transports/ws/connect.js');
      return connect(url, { serviceKey: serviceKeyOf(parsed.values) });
    }
    case 'schema': {
      const { jsonSchemas } = await import('./protocol/json-schema.js');
      return print(`${JSON.stringify(jsonSchemas(), null, 2)}\n`);
    }
    case 'openapi': {
      const { openApiDocument } = await import('./protocol/openapi.js');
      return print(`${JSON.stringify(openApiDocument(), null, 2)}\n`);
    }
  }
}

main().catch(fatal);
