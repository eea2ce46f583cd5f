import { request, type Agent, type IncomingHttpHeaders } from 'node:http';

/** An HTTP answer as the tests read it. */
export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body as sent. */
  text: string;
  /** The body parsed as JSON; `{}` when empty. */
  body: Record<string, unknown>;
  reusedSocket: boolean;
}

/** One request with `body` as it is (bytes that need not be UTF-8 as a Buffer); resolves with the whole answer. */
export function httpPost(url: string, body: string | Buffer, headers: Record<string, string>, o: { method?: string; agent?: Agent } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: o.method ?? 'POST', agent: o.agent, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () =>
        resolve({
          status: res.statusCode!,
          headers: res.headers,
          text,
          body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
          reusedSocket: req.reusedSocket,
        }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}
