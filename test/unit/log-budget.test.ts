/**
 * LogBudget: per kind, the first lines of each interval are written, the rest counted, and
 * the count is reported once, when the interval ends (on the clock's timer, or by the next
 * line of the kind if that comes first). Kinds are budgeted apart.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { LogBudget } from '../../src/log-budget.js';

function setUp(lines = 3, intervalMs = 1000) {
  const out: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void out.push(JSON.parse(l) as Record<string, unknown>) });
  const clock = new ManualClock();
  const budget = new LogBudget({ log, clock, lines, intervalMs });
  const hit = (kind: string, audit = false) => budget.hit(kind, () => log.warn({ kind }, kind), { audit });
  const summaries = () => out.filter((l) => l.event === 'log lines suppressed');
  return { out, clock, hit, summaries };
}

describe('LogBudget', () => {
  it('writes the first lines of an interval, then reports the count left out when it ends', () => {
    const { out, clock, hit, summaries } = setUp();
    for (let i = 0; i < 100; i++) hit('a');
    expect(out.filter((l) => l.msg === 'a')).toHaveLength(3);
    expect(summaries()).toEqual([]);
    clock.advance(999);
    expect(summaries()).toEqual([]);
    clock.advance(1);
    expect(summaries()).toEqual([expect.objectContaining({ level: 40, line: 'a', suppressed: 97, interval_ms: 1000 })]);
    expect(clock.pending).toBe(0);
  });

  it('budgets kinds apart, and a summary of audit lines is an audit line, at info as they are', () => {
    const { out, clock, hit, summaries } = setUp(1);
    for (let i = 0; i < 5; i++) {
      hit('a');
      hit('b', true);
    }
    expect(out.map((l) => l.msg)).toEqual(['a', 'b']);
    clock.advance(1000);
    expect(summaries().map((l) => [l.line, l.suppressed, l.audit, l.level])).toEqual([
      ['a', 4, undefined, 40],
      ['b', 4, true, 30],
    ]);
  });

  it('an interval with nothing left out writes no summary; the next interval starts with a full budget', () => {
    const { out, clock, hit, summaries } = setUp(2);
    hit('a');
    hit('a');
    clock.advance(1000);
    hit('a');
    hit('a');
    hit('a');
    expect(out.filter((l) => l.msg === 'a')).toHaveLength(4);
    clock.advance(1000);
    expect(summaries()).toEqual([expect.objectContaining({ line: 'a', suppressed: 1 })]);
  });

  it('a budget of one line is a sampled log: the summary has the level its lines asked for, even with no later line', () => {
    const out: Record<string, unknown>[] = [];
    const log = pino({ level: 'debug' }, { write: (l: string) => void out.push(JSON.parse(l) as Record<string, unknown>) });
    const clock = new ManualClock();
    const budget = new LogBudget({ log, clock, lines: 1, intervalMs: 10_000 });
    for (let i = 0; i < 50; i++) {
      budget.hit('failing', () => log.error('failing'), { level: 'error' });
      budget.hit('quiet', () => log.debug('quiet'), { level: 'debug' });
      clock.advance(10);
    }
    expect(out.map((l) => [l.level, l.msg])).toEqual([
      [50, 'failing'],
      [20, 'quiet'],
    ]);
    // The failures stopped: their count still comes, when the interval ends.
    clock.advance(10_000);
    expect(out.filter((l) => l.event === 'log lines suppressed').map((l) => [l.level, l.line, l.suppressed])).toEqual([
      [50, 'failing', 49],
      [20, 'quiet', 49],
    ]);
  });

  it('refuses a budget that is not a count or an interval', () => {
    const log = pino({ level: 'silent' });
    const clock = new ManualClock();
    expect(() => new LogBudget({ log, clock, lines: -1 })).toThrow('The lines option must be a non-negative integer.');
    expect(() => new LogBudget({ log, clock, intervalMs: 0 })).toThrow('The intervalMs option must be a positive integer.');
  });
});
