import { ServerResponse, type IncomingMessage, type OutgoingHttpHeader, type OutgoingHttpHeaders } from 'node:http';

/** Called just before an answer's head is written, while its headers may still change. */
export type HeadHook = (res: ServerResponse) => void;

type Headers = OutgoingHttpHeaders | OutgoingHttpHeader[];

/**
 * The `ServerResponse` class of a server (`createServer({ ServerResponse })`) whose answers
 * `hook` sees before their head goes out, however it is written: `writeHead`, or the implicit
 * head of `write` and `end`, which Node writes through `writeHead`, its own answers (417 to an
 * unknown `Expect`) included. Whether a connection is kept after an answer is decided there, by
 * `Connection: close`, so it is the one place that sees every answer in time.
 */
export function responseWithHeadHook(hook: HeadHook): typeof ServerResponse<IncomingMessage> {
  return class HookedResponse extends ServerResponse {
    override writeHead(statusCode: number, reasonOrHeaders?: string | Headers, headers?: Headers): this {
      if (!this.headersSent) hook(this);
      return typeof reasonOrHeaders === 'string' ? super.writeHead(statusCode, reasonOrHeaders, headers) : super.writeHead(statusCode, reasonOrHeaders);
    }
  };
}
