/**
 * A Store double over a real one, for tests that need the store to misbehave: it passes every
 * call through until told otherwise. Tests steer it through its fields and methods instead of
 * patching a live store's functions (a patch left behind by a failed assertion would leak into
 * the next test).
 */
import { GatewayError } from '../../src/errors.js';
import type { Store } from '../../src/store/types.js';

export type StoreOp = 'get' | 'set' | 'delete' | 'take' | 'swap' | 'swapIf' | 'claim' | 'indexAdd' | 'indexRemove' | 'indexMembers';
const OPS: readonly StoreOp[] = ['get', 'set', 'delete', 'take', 'swap', 'swapIf', 'claim', 'indexAdd', 'indexRemove', 'indexMembers'];

/** A gate on one operation; see `FailingStore.hold`. */
export interface Hold {
  /** Calls that reached the gate so far. */
  readonly entered: number;
  /** Resolves when the first call reaches the gate. */
  readonly reached: Promise<void>;
  /** Opens the gate: held calls go on, later ones pass straight through. */
  release(): void;
}

export interface HoldOptions {
  /** Only calls whose arguments match are held (default: all). */
  match?: (args: readonly unknown[]) => boolean;
  /** Hold only the first matching call. */
  once?: boolean;
  /** Run the real operation first and hold its result (a reply delayed on the way back). */
  afterInner?: boolean;
}

export interface FailingStore extends Store {
  /** While true, every operation rejects with GatewayError UNAVAILABLE and isReady() is false. */
  down: boolean;
  /** Operations that failed so far (outage or `fail`). */
  failures: number;
  /** Makes `op` reject with `error` (default: GatewayError UNAVAILABLE) until `restore(op)`, or only its next `times` calls. */
  fail(op: StoreOp, error?: unknown, times?: number): void;
  /** Makes `op` never settle until `restore(op)` (a hung backend). */
  hang(op: StoreOp): void;
  /** Holds calls of `op` at a gate until `release()`. */
  hold(op: StoreOp, o?: HoldOptions): Hold;
  /** Puts `op` (or, without an argument, every operation) back to passing through. */
  restore(op?: StoreOp): void;
}

type Behaviour =
  | { kind: 'fail'; error: unknown; left?: number }
  | { kind: 'hang' }
  | { kind: 'hold'; gate: Promise<void>; o: HoldOptions; enter: () => void; open: () => boolean };

/** Wraps `inner`; with `down` (the default) the store starts out unavailable. */
export function failingStore(inner: Store, down = true): FailingStore {
  const behaviours = new Map<StoreOp, Behaviour>();
  const call = (op: StoreOp, args: unknown[]) => (inner[op] as (...a: unknown[]) => Promise<unknown>).apply(inner, args);
  const s = {
    kind: inner.kind,
    events: inner.events,
    down,
    failures: 0,
    isReady: () => !s.down && inner.isReady(),
    size: () => inner.size(),
    close: () => inner.close(),
    fail(op: StoreOp, error: unknown = GatewayError.unavailable(new Error(`simulated failure of ${op}`)), times?: number) {
      behaviours.set(op, { kind: 'fail', error, left: times });
    },
    hang(op: StoreOp) {
      behaviours.set(op, { kind: 'hang' });
    },
    hold(op: StoreOp, o: HoldOptions = {}): Hold {
      let entered = 0;
      let opened = false;
      let open!: () => void;
      let reach!: () => void;
      const gate = new Promise<void>((r) => (open = r));
      const reached = new Promise<void>((r) => (reach = r));
      behaviours.set(op, {
        kind: 'hold',
        gate,
        o,
        enter: () => {
          entered++;
          reach();
        },
        open: () => opened,
      });
      return {
        get entered() {
          return entered;
        },
        reached,
        release() {
          opened = true;
          open();
        },
      };
    },
    restore(op?: StoreOp) {
      if (op === undefined) behaviours.clear();
      else behaviours.delete(op);
    },
  } as FailingStore;
  // Reads fail, hang and are held as `get`: they are the same operation answered in place.
  s.read = <T>(key: string) => s.get<T>(key);
  for (const op of OPS) {
    (s as unknown as Record<string, unknown>)[op] = async (...args: unknown[]) => {
      if (s.down) {
        s.failures++;
        throw GatewayError.unavailable(new Error(`simulated outage in ${op}`));
      }
      const b = behaviours.get(op);
      if (b === undefined) return call(op, args);
      switch (b.kind) {
        case 'fail':
          s.failures++;
          if (b.left !== undefined && --b.left <= 0) behaviours.delete(op);
          throw b.error;
        case 'hang':
          return new Promise(() => undefined);
        case 'hold': {
          if (b.open() || (b.o.match && !b.o.match(args))) return call(op, args);
          if (b.o.once) behaviours.delete(op);
          b.enter();
          if (b.o.afterInner) {
            const v = await call(op, args);
            await b.gate;
            return v;
          }
          await b.gate;
          return call(op, args);
        }
      }
    };
  }
  return s;
}
