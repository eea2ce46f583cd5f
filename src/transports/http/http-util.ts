import type { IncomingMessage, ServerResponse } from 'node:http';

/** Headers on every HTTP answer of the gateway. */
export const BASE_HEADERS: Readonly<Record<string, string>> = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

export function send(res: ServerResponse, status: number, type: string, body: string | Buffer, head = false): void {
  res.writeHead(status, { ...BASE_HEADERS, 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(head ? undefined : body);
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value), res.req?.method === 'HEAD');
}

/** The request body as text, or undefined when it passes `limit` bytes (the read stops there). */
export function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    let parts: Buffer[] | undefined = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      if (parts === undefined) return; // over the limit: the rest is read and dropped
      size += chunk.length;
      if (size > limit) {
        parts = undefined;
        resolve(undefined);
        return;
      }
      parts.push(chunk);
    });
    req.on('end', () => parts !== undefined && resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}
