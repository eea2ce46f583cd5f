import { GatewayError } from '../../errors.js';
import { audit, type Logger } from '../../log.js';
import type { LogBudget } from '../../log-budget.js';
import type { ConnectionOptions } from '../../pipeline/connection.js';
import { BROWSER_TYPES } from '../../protocol/messages.js';
import type { AddressBudget } from './address-budget.js';
import type { AuthGuard, FailedAuthThrottle } from '../auth-throttle.js';

/** What every browser connection of one server shares. */
export interface BrowserLimits {
  throttle: FailedAuthThrottle;
  exchanges: AddressBudget;
  /** GATEWAY_EXCHANGE_LIMIT, for the refusal's text. */
  exchangeLimit: number;
  log: Logger;
  /** The budget of lines a client can cause (the gateway's). */
  lines: LogBudget;
}

/**
 * The pipeline hooks of one browser connection (ConnectionOptions: the allowed types, the
 * `exchange_session` budget of its address, the failed-auth guard). One object with methods,
 * its guard made at the first request: a connection that only listens for its session's end
 * (most of them) holds no closures and no tallies.
 */
export class BrowserPolicy implements ConnectionOptions {
  readonly #limits: BrowserLimits;
  readonly #address: string;
  /** What the address's limits count it under (client-address.ts `limitKey`). */
  readonly #key: string;
  #guard: AuthGuard | undefined;
  /** The last request was refused by the exchange budget (its reply is not an auth answer). */
  #limited = false;
  /** Audited once per connection (and within the gateway's budget of such lines: see LogBudget). */
  #tripped = false;

  constructor(limits: BrowserLimits, address: string, key = address) {
    this.#limits = limits;
    this.#address = address;
    this.#key = key;
  }

  get allowed(): ReadonlySet<string> {
    return BROWSER_TYPES;
  }

  get untrusted(): boolean {
    return true;
  }

  get logFields(): Record<string, string> {
    return { transport: 'ws', role: 'browser', remote: this.#address };
  }

  admit(type: string): GatewayError | undefined {
    const l = this.#limits;
    if (type === 'exchange_session' && !l.exchanges.take(this.#key)) {
      this.#limited = true;
      this.#trip('exchange_session per address');
      return new GatewayError('RATE_LIMITED', `Rate limited: at most ${l.exchangeLimit} exchange_session a minute from one address`);
    }
    const refused = (this.#guard ??= l.throttle.guard(this.#key)).admit(type);
    if (refused !== undefined) this.#trip('failed authentications');
    return refused;
  }

  onReply(requestType: string, replyType: string): void {
    // The refusal above is answered at once (synchronously): it is not an auth answer.
    if (this.#limited) this.#limited = false;
    else this.#guard?.onReply(requestType, replyType);
  }

  #trip(limit: string): void {
    if (this.#tripped) return;
    this.#tripped = true;
    const l = this.#limits;
    l.lines.hit('rate limit tripped', () => audit(l.log, 'rate limit tripped', { limit, remote: this.#address }), { audit: true });
  }
}
