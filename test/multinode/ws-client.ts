import { WebSocket } from 'ws';
import { waitForItem } from '../helpers/wait-for.js';

type Body = Record<string, unknown> & { type: string };

/** A WebSocket client of the gateway: requests by msg_id, pushes collected with their arrival time. */
export class WsClient {
  readonly ws: WebSocket;
  readonly pushes: { body: Body; at: number }[] = [];
  #seq = 0;
  readonly #waiting = new Map<number, (b: Body) => void>();

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as { body: Body };
      const to = msg.body.in_reply_to;
      if (typeof to === 'number' && this.#waiting.has(to)) {
        this.#waiting.get(to)!(msg.body);
        this.#waiting.delete(to);
      } else if (to === undefined) this.pushes.push({ body: msg.body, at: performance.now() });
    });
  }

  /** Opens a service connection (with `serviceKey`) or a browser one (without). */
  static open(url: string, serviceKey?: string): Promise<WsClient> {
    const ws = new WebSocket(url, serviceKey ? { headers: { Authorization: `Bearer ${serviceKey}` } } : {});
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new WsClient(ws)));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
  }

  request(body: Body, src = 'client'): Promise<Body> {
    const msgId = ++this.#seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to ${body.type} within 5 s`)), 5000);
      this.#waiting.set(msgId, (b) => (clearTimeout(timer), resolve(b)));
      this.ws.send(JSON.stringify({ src, dest: 'gateway', body: { ...body, msg_id: msgId } }));
    });
  }

  push(pred: (b: Body) => boolean, timeoutMs = 2000): Promise<{ body: Body; at: number }> {
    return waitForItem(this.pushes, (p) => pred(p.body), timeoutMs, 'push');
  }

  close(): void {
    this.ws.terminate();
  }
}
