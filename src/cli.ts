#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createApp } from './app.js';
import { loadConfig, type Config } from './config.js';
import { ConfigError } from './errors.js';
import { runStdio } from './transports/stdio.js';

const USAGE = `usage: auth-gateway <command> [options]

commands:
  serve              WebSocket gateway (GATEWAY_HOST:GATEWAY_PORT)
  stdio              JSON lines on stdin/stdout
  connect URL        bridge stdin/stdout to a running gateway; as a service with the key
                     in GATEWAY_SERVICE_KEY or in a file: --service-key-file FILE
  schema             print the JSON Schema of every message

options (each also a GATEWAY_* variable; flags win):
  --fixtures FILE    seed sessions from FILE (tests and demos only)
  --store URL        memory:// (default), redis://host:port[/db] or postgres://user@host/db
  --host H --port P  listen address of serve
  --node-id ID       src of this node's pushes
  --log-level L      fatal|error|warn|info|debug|trace|silent
  --session-ttl S    default session lifetime, seconds (GATEWAY_SESSION_TTL)
  --max-message-bytes N  largest line or frame served (GATEWAY_MAX_MESSAGE_BYTES)
  --dev              enable POST /autosession (dev login; never in production)
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
};

function fail(message: string, code = 2): never {
  process.stderr.write(`auth-gateway: ${message}\n`);
  process.exit(code);
}

function configFrom(values: Record<string, string | boolean | undefined>): Config {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const [flag, name] of Object.entries(FLAG_ENV)) {
    const v = values[flag];
    if (typeof v === 'string') env[name] = v;
  }
  if (values.dev === true) env.GATEWAY_DEV = '1';
  return loadConfig(env);
}

/**
 * The service key of `connect`: from GATEWAY_SERVICE_KEY or a file, never from argv, where
 * every local user could read it in the process list.
 */
function serviceKeyOf(values: Record<string, string | boolean | undefined>): string | undefined {
  if (values['service-key'] !== undefined) {
    fail('--service-key is refused: a key on the command line shows in the process list (ps); set GATEWAY_SERVICE_KEY or use --service-key-file FILE');
  }
  const file = values['service-key-file'];
  if (typeof file === 'string') {
    if (process.env.GATEWAY_SERVICE_KEY) fail('set either GATEWAY_SERVICE_KEY or --service-key-file, not both');
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      fail(`--service-key-file: cannot read ${JSON.stringify(file)} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    // A file written by `echo` or an editor ends with a newline that is not part of the key.
    const key = text.replace(/\r?\n$/, '');
    if (key === '' || /[\r\n]/.test(key)) fail(`--service-key-file: ${JSON.stringify(file)} must hold the key on one line`);
    return key;
  }
  return process.env.GATEWAY_SERVICE_KEY || undefined;
}

async function stdio(config: Config): Promise<void> {
  const { gateway } = await createApp(config);
  await runStdio(gateway, process.stdin, process.stdout, { maxMessageBytes: config.maxMessageBytes });
  // Everything read has been answered: exit now, whatever timers or sockets remain.
  process.exit(0);
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        ...Object.fromEntries(Object.keys(FLAG_ENV).map((f) => [f, { type: 'string' as const }])),
        dev: { type: 'boolean' },
        'service-key': { type: 'string' },
        'service-key-file': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`);
  }
  const [command, ...rest] = parsed.positionals;
  if (parsed.values.help || command === undefined) {
    process.stdout.write(USAGE);
    process.exit(command === undefined && !parsed.values.help ? 2 : 0);
  }
  switch (command) {
    case 'stdio':
      return stdio(configFrom(parsed.values));
    case 'serve': {
      const { serve } = await import('./server.js');
      return serve(configFrom(parsed.values));
    }
    case 'connect': {
      const url = rest[0];
      if (!url) fail('connect needs a URL, e.g. ws://127.0.0.1:8080');
      const { connect } = await import('./transports/ws/connect.js');
      return connect(url, { serviceKey: serviceKeyOf(parsed.values) });
    }
    case 'schema': {
      const { jsonSchemas } = await import('./protocol/json-schema.js');
      process.stdout.write(`${JSON.stringify(jsonSchemas(), null, 2)}\n`);
      return;
    }
    default:
      fail(`unknown command "${command}"\n${USAGE}`);
  }
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) fail(err.message);
  fail(`fatal: ${err instanceof Error ? err.message : String(err)}`, 1);
});
