/**
 * A WebSocket client for the fault tests: requests matched to replies by msg_id, a per-call
 * time limit, and a tally of everything offered and answered.
 */
import WebSocket from 'ws';

export type Body = Record<string, unknown> & { type: string };

export class Tally {
  offered = 0;
  answered = 0;
  timedOut = 0;
  readonly byType: Record<string, number> = {};

  count(reply: Body | undefined): void {
    if (reply === undefined) {
      this.timedOut++;
      return;
    }
    this.answered++;
    const t = reply.type === 'error' ? `error ${String(reply.code)}` : reply.type;
    this.byType[t] = (this.byType[t] ?? 0) + 1;
  }
}

export class Client {
  readonly ws: WebSocket;
  #seq = 0;
  readonly #waiting = new Map<number, (b: Body | undefined) => void>();
  closed: number | undefined;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString()) as { body: Body };
      const id = m.body.in_reply_to;
      if (typeof id === 'number') {
        const w = this.#waiting.get(id);
        this.#waiting.delete(id);
        w?.(m.body);
      }
    });
    ws.on('close', (code) => {
      this.closed = code;
      for (const w of this.#waiting.values()) w(undefined);
      this.#waiting.clear();
    });
  }

  static open(url: string, serviceKey?: string): Promise<Client> {
    const ws = new WebSocket(url, { headers: serviceKey ? { Authorization: `Bearer ${serviceKey}` } : {} });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new Client(ws)));
      ws.once('error', reject);
    });
  }

  /** Sends a request; resolves with its reply, or undefined after `timeoutMs` or on close. */
  call(body: Body, timeoutMs = 5000, tally?: Tally): Promise<Body | undefined> {
    const msg_id = ++this.#seq;
    if (tally) tally.offered++;
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#waiting.delete(msg_id);
        resolve(undefined);
      }, timeoutMs);
      this.#waiting.set(msg_id, (b) => {
        clearTimeout(t);
        resolve(b);
      });
      if (this.ws.readyState !== WebSocket.OPEN) {
        // Settled on a later turn, so a caller looping on a dead socket cannot starve timers.
        this.#waiting.delete(msg_id);
        clearTimeout(t);
        setImmediate(() => resolve(undefined));
        return;
      }
      this.ws.send(JSON.stringify({ src: 'fault', dest: 'gateway', body: { ...body, msg_id } }));
    }).then((b) => {
      tally?.count(b as Body | undefined);
      return b as Body | undefined;
    });
  }

  close(): void {
    this.ws.close();
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
