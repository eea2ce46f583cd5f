import type { Counter, Metric, Registry } from 'prom-client';

/**
 * The per-request metrics (`gateway_messages_total`, `gateway_message_duration_seconds`) are
 * counted on every request: prom-client's own `inc` and `observe` check and hash their label
 * object on each call. Here a request costs a map lookup by its type (one of a closed set)
 * and a few additions; prom-client still owns the registry and the exposition.
 */

/** Counts by two labels, added to a prom-client Counter when it is collected (at each scrape). */
export class PendingCounts {
  readonly #counter: Counter<'type' | 'outcome'>;
  /** type -> outcome -> count not yet added to the counter */
  readonly #pending = new Map<string, Map<string, { n: number }>>();

  constructor(counter: Counter<'type' | 'outcome'>) {
    this.#counter = counter;
  }

  add(type: string, outcome: string): void {
    let byOutcome = this.#pending.get(type);
    if (byOutcome === undefined) this.#pending.set(type, (byOutcome = new Map()));
    const c = byOutcome.get(outcome);
    if (c !== undefined) {
      c.n++;
      return;
    }
    // A new series is made in the counter at once: it is then listed where prom-client would list it.
    this.#counter.inc({ type, outcome }, 0);
    byOutcome.set(outcome, { n: 1 });
  }

  /** Adds what was counted since the last flush to the counter: its `collect` hook calls this. */
  flush(): void {
    for (const [type, byOutcome] of this.#pending) {
      for (const [outcome, c] of byOutcome) {
        if (c.n === 0) continue;
        this.#counter.inc({ type, outcome }, c.n);
        c.n = 0;
      }
    }
  }
}

/** One line of the exposition, in prom-client's terms. */
interface Sample {
  labels: Record<string, string | number>;
  sharedLabels: Record<string, string>;
  value: number;
  metricName: string;
  /** prom-client's buckets carry one (null without exemplars). */
  exemplar?: null;
}

/** What prom-client's registry reads of a metric. */
interface MetricData<V> {
  name: string;
  help: string;
  type: string;
  aggregator: string;
  values: V[];
}

interface Series {
  /** The label values, in the order of the histogram's label names. */
  values: readonly string[];
  /** Observations per bucket (not cumulative); the last slot is above every bound. */
  counts: Float64Array;
  sum: number;
  count: number;
}

/**
 * A histogram by one or two labels, exposed exactly as prom-client exposes its own (the same
 * lines in the same order: series in the order of their first observation), registered on a
 * prom-client Registry as one of its metrics.
 */
export class HotHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #labels: readonly [string] | readonly [string, string];
  readonly #bounds: readonly number[];
  /** first label value -> second label value ('' with one label) -> series */
  readonly #series = new Map<string, Map<string, Series>>();
  /** Every series, in the order of its first observation (prom-client's order). */
  #order: Series[] = [];

  constructor(o: { name: string; help: string; labels: readonly [string] | readonly [string, string]; buckets: readonly number[]; registers: Registry[] }) {
    this.name = o.name;
    this.help = o.help;
    this.#labels = o.labels;
    this.#bounds = [...o.buckets].sort((a, b) => a - b);
    // The registry asks a metric only for its name, `get` (or `getForPromString`) and `reset`.
    for (const r of o.registers) r.registerMetric(this as unknown as Metric);
  }

  /** One observation of `value` in the series named by `a` (and `b`, with two labels). */
  observe(value: number, a: string, b = ''): void {
    let byB = this.#series.get(a);
    if (byB === undefined) this.#series.set(a, (byB = new Map()));
    let s = byB.get(b);
    if (s === undefined) {
      s = { values: this.#labels.length === 1 ? [a] : [a, b], counts: new Float64Array(this.#bounds.length + 1), sum: 0, count: 0 };
      byB.set(b, s);
      this.#order.push(s);
    }
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  /** prom-client's shape for its text exposition: `le` in `labels`, the series' own labels in `sharedLabels`. */
  getForPromString(): Promise<MetricData<Sample>> {
    const values: Sample[] = [];
    for (const s of this.#order) {
      const shared: Record<string, string> = {};
      this.#labels.forEach((label, i) => (shared[label] = s.values[i]!));
      let acc = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        acc += s.counts[i]!;
        values.push({ labels: { le: this.#bounds[i]! }, sharedLabels: shared, value: acc, metricName: `${this.name}_bucket`, exemplar: null });
      }
      values.push(
        { labels: { le: '+Inf' }, sharedLabels: shared, value: s.count, metricName: `${this.name}_bucket`, exemplar: null },
        { labels: {}, sharedLabels: shared, value: s.sum, metricName: `${this.name}_sum` },
        { labels: {}, sharedLabels: shared, value: s.count, metricName: `${this.name}_count` },
      );
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  /** prom-client's JSON shape: every label in `labels`. */
  async get(): Promise<MetricData<Omit<Sample, 'sharedLabels'>>> {
    const data = await this.getForPromString();
    return { ...data, values: data.values.map(({ sharedLabels, labels, ...v }) => ({ ...v, labels: { ...labels, ...sharedLabels } })) };
  }

  reset(): void {
    this.#series.clear();
    this.#order = [];
  }
}
