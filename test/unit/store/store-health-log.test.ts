import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/log.js';
import { StoreHealthLog } from '../../../src/store/store-health-log.js';

function captured() {
  const lines: { level: string; msg: string }[] = [];
  const log = createLogger('info', { write: (s: string) => void lines.push(JSON.parse(s) as { level: string; msg: string }) });
  return { lines, log };
}

describe('StoreHealthLog at start-up', () => {
  it('a database that answered but refuses the tables is said so, at error level, not "not reachable yet"', async () => {
    const { lines, log } = captured();
    const health = new StoreHealthLog(log, 'PostgreSQL');
    const refused = Object.assign(new Error('column "expires" does not exist'), { code: '42703' });
    await health.watch(Promise.reject(refused)).catch(() => undefined);
    health.notYet(3000);
    expect(lines.map((l) => l.msg)).toEqual([
      `PostgreSQL answered, but the gateway's tables cannot be set up (42703: column "expires" does not exist): every store operation answers error 11 until they can`,
    ]);
    expect(lines[0]!.level).toBe('error');
  });

  it('a database that does not answer is "not reachable yet", a warning', async () => {
    const { lines, log } = captured();
    const health = new StoreHealthLog(log, 'PostgreSQL');
    await health.watch(Promise.reject(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }))).catch(() => undefined);
    health.notYet(3000);
    expect(lines.map((l) => l.msg)).toEqual(['PostgreSQL is not reachable yet: every store operation answers error 11 until it is']);
    expect(lines[0]!.level).toBe('warn');
  });
});

describe('StoreHealthLog while running', () => {
  it('a refusal by the database (a privilege taken away, tables gone) is said so with its cause, at error level', () => {
    const { lines, log } = captured();
    const health = new StoreHealthLog(log, 'PostgreSQL');
    health.note(Object.assign(new Error('permission denied for table entries'), { code: '42501' }));
    health.down(800);
    expect(lines.map((l) => l.msg)).toEqual([
      `PostgreSQL answered, but the gateway's tables cannot be used (42501: permission denied for table entries): answering error 11 until they can (tables that are gone are made again)`,
    ]);
    expect(lines[0]!.level).toBe('error');
  });

  it('a database that stops answering is "unreachable", a warning', () => {
    const { lines, log } = captured();
    const health = new StoreHealthLog(log, 'PostgreSQL');
    health.note(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }));
    health.down(800);
    expect(lines.map((l) => l.msg)).toEqual(['PostgreSQL unreachable: answering error 11 until it returns']);
    expect(lines[0]!.level).toBe('warn');
  });
});
