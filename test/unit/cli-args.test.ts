/**
 * Usage errors of the command line: one line on stderr, exit 2, and never a value from argv
 * quoted back (an extra argument is as likely a key pasted in the wrong place as anything).
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const KEY = 'V1BtHqBwL4lmaatu5jHa804k8NIWHuqFMuukDE8eVKc=';
const COMMANDS = 'serve, stdio, connect, config, schema or openapi';

const cli = (args: string[]) =>
  spawnSync(process.execPath, ['dist/cli.js', ...args], { env: { PATH: process.env.PATH ?? '' }, input: '', timeout: 10_000, encoding: 'utf8' });

describe('positional arguments', () => {
  it('too many: says how many were given, never which', () => {
    const cases: [string[], string][] = [
      [['connect', 'ws://127.0.0.1:1', KEY], 'connect takes 1 argument, the URL (2 given)'],
      [['connect', 'ws://127.0.0.1:1', KEY, 'more'], 'connect takes 1 argument, the URL (3 given)'],
      [['stdio', KEY], 'stdio takes no arguments (1 given)'],
      [['serve', KEY], 'serve takes no arguments (1 given)'],
      [['config', 'a', KEY], 'config takes no arguments (2 given)'],
      [['schema', KEY], 'schema takes no arguments (1 given)'],
      [['openapi', KEY], 'openapi takes no arguments (1 given)'],
    ];
    for (const [args, message] of cases) {
      const r = cli(args);
      const label = args.length.toString();
      expect(r.status, label).toBe(2);
      expect(r.stdout, label).toBe('');
      expect(r.stderr, label).toBe(`auth-gateway: ${message}\n`);
    }
  });

  it('an unknown command is not quoted: the commands are listed instead', () => {
    for (const args of [[KEY], ['nope'], [KEY, 'serve']]) {
      const r = cli(args);
      expect(r.status).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(
        `auth-gateway: unknown command: the first argument must be ${COMMANDS} (auth-gateway --help lists the commands and their options)\n`,
      );
    }
  });
});

describe('an unknown option', () => {
  it('is named when it looks like an option name; an argument that does not (a key starting with -) is not quoted', () => {
    const named = cli(['serve', '--no-such-flag']);
    expect(named.status).toBe(2);
    expect(named.stderr).toMatch(/^auth-gateway: Unknown option '--no-such-flag'\. .*\n$/);
    for (const key of [`--${KEY}`, `-${KEY}`, '--Ab9_Zz+/==', `--${'a'.repeat(60)}`]) {
      const r = cli(['connect', 'ws://127.0.0.1:1', key]);
      expect(r.status, key).toBe(2);
      expect(r.stdout, key).toBe('');
      expect(r.stderr, key).toBe(
        'auth-gateway: an argument starting with - is not an option this command knows (not shown: it may be a key) (auth-gateway --help lists the commands and their options)\n',
      );
    }
  });
});

describe('a flag given twice', () => {
  it('is refused with one line naming it, whichever the command and however it is spelt, rather than the last one winning', () => {
    const cases: [string[], string][] = [
      [['config', '--store', 'redis://127.0.0.1:6390', '--store', 'memory://'], '--store'],
      [['serve', '--port', '1', '--port', '2'], '--port'],
      [['config', '--port=1', '--port', '2'], '--port'],
      [['stdio', '--node-id', 'a', '--log-level', 'info', '--node-id', 'b'], '--node-id'],
      [['config', '--dev', '--dev'], '--dev'],
      [['connect', 'ws://127.0.0.1:1', '--service-key-file', 'a', '--service-key-file', 'b'], '--service-key-file'],
      [['--help', '-h'], '--help'],
    ];
    for (const [args, flag] of cases) {
      const r = cli(args);
      const label = args.join(' ');
      expect(r.status, label).toBe(2);
      expect(r.stdout, label).toBe('');
      expect(r.stderr, label).toBe(`auth-gateway: ${flag} is given more than once: give each option once\n`);
    }
  });
});

describe('a flag whose value is missing or looks like another option', () => {
  it('is refused in one line naming the flag, never quoting the value', () => {
    const cases: [string[], string][] = [
      [['serve', '--port', '-5'], '--port'],
      [['connect', 'ws://127.0.0.1:1', '--service-key-file', `-${KEY}`], '--service-key-file'],
      [['config', '--store'], '--store'],
    ];
    for (const [args, flag] of cases) {
      const r = cli(args);
      const label = args.join(' ');
      expect(r.status, label).toBe(2);
      expect(r.stdout, label).toBe('');
      // node:util words the message (over several lines of its own); one line of it is printed.
      expect(r.stderr, label).toMatch(new RegExp(`^auth-gateway: Option '${flag}[^\n]*\\(auth-gateway --help lists the commands and their options\\)\n$`));
      expect(r.stderr, label).not.toContain(KEY);
    }
  });
});

describe('a bad value given by a flag', () => {
  it('is refused in one line naming the flag before its variable; a variable alone is named alone', () => {
    const cases: [string[], string][] = [
      [['config', '--session-ttl', 'abc'], '--session-ttl (GATEWAY_SESSION_TTL) must be a whole number of seconds'],
      [['stdio', '--max-message-bytes', '10'], '--max-message-bytes (GATEWAY_MAX_MESSAGE_BYTES) must be a number of bytes'],
      [['config', '--port', '99999'], '--port (GATEWAY_PORT) must be a TCP port'],
      [['config', '--service-key-file', '/nonexistent/key'], '--service-key-file (GATEWAY_SERVICE_KEY_FILE): cannot read'],
      [['config', '--fixtures', '/nonexistent/fixtures.json'], '--fixtures (GATEWAY_FIXTURES): cannot read'],
    ];
    for (const [args, start] of cases) {
      const r = cli(args);
      const label = args.join(' ');
      expect(r.status, label).toBe(2);
      expect(r.stdout, label).toBe('');
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines, label).toHaveLength(1);
      expect((JSON.parse(lines[0]!) as { msg: string }).msg, label).toMatch(new RegExp(`^${start.replace(/[()]/g, '\\$&')}`));
    }
    const env = spawnSync(process.execPath, ['dist/cli.js', 'config'], {
      env: { PATH: process.env.PATH ?? '', GATEWAY_SESSION_TTL: 'abc' },
      timeout: 10_000,
      encoding: 'utf8',
    });
    expect(env.status).toBe(2);
    expect((JSON.parse(env.stderr.trimEnd()) as { msg: string }).msg).toMatch(/^GATEWAY_SESSION_TTL must be/);
  });
});

describe('a password on the command line', () => {
  it('--store with a password in its URL is refused, as --service-key is: ps would show it', () => {
    const line =
      'auth-gateway: --store is refused with a password in its URL: a command line shows in the process list (ps); set GATEWAY_STORE or GATEWAY_STORE_FILE\n';
    for (const command of ['serve', 'stdio', 'config']) {
      for (const url of [
        'redis://:hunter2@127.0.0.1:6390/0',
        'redis://app:hunter2@h1:6390,h2:6391',
        'postgres://app:hunter2@db/auth',
        'postgres://app@db/auth?password=hunter2',
      ]) {
        const r = cli([command, '--store', url]);
        expect({ status: r.status, stderr: r.stderr }, `${command} ${url}`).toEqual({ status: 2, stderr: line });
      }
    }
    // A URL without a password stays a flag like any other.
    const r = spawnSync(process.execPath, ['dist/cli.js', 'config', '--store', 'redis://app@127.0.0.1:6390/0'], {
      env: { PATH: process.env.PATH ?? '', GATEWAY_JWT_SECRET: KEY },
      timeout: 10_000,
      encoding: 'utf8',
    });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
  });
});
