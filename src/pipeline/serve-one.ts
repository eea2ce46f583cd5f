import type { Decoded } from '../protocol/decode.js';
import { isReply, type GatewayConnection, type Outbound } from './connection.js';
import { Pump } from './pump.js';

/**
 * Serves one request on a connection of its own, through the pump like every transport's
 * messages, and resolves with its reply (request-reply transports: HTTP, the dev login).
 */
export async function serveOne(conn: GatewayConnection, d: Decoded): Promise<Outbound> {
  let answer: Outbound | undefined;
  const pump = new Pump(
    conn,
    {
      write: (_text, m) => {
        if (isReply(m)) answer ??= m;
      },
      flush: () => {},
      pause: () => {},
      resume: () => {},
    },
    { highWaterMark: 1, schedule: queueMicrotask },
  );
  pump.receive(d);
  pump.end();
  await pump.done;
  // The pipeline answers every message it reads exactly once.
  if (answer === undefined) throw new Error('the pipeline completed without a reply');
  return answer;
}
