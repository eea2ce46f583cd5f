import { afterEach, describe, expect, it } from 'vitest';
import { createSession, service, start, stopAll } from './helpers.js';

afterEach(stopAll);

// SocketLink hands ws's receiver back a reused fragment list after each message: messages
// sent in several frames, and whole ones between them, must still arrive intact.
describe('fragmented messages', () => {
  it('answers messages split over several frames, interleaved with whole ones, each exactly once', async () => {
    const { server } = await start();
    const sid = await createSession(server.url, 60);
    const s = service(server.url);
    await s.opened;
    const n = 20;
    for (let i = 1; i <= n; i++) {
      const text = JSON.stringify({ src: 'c1', dest: 'gateway', body: { type: 'validate_session', msg_id: i, session_id: sid } });
      if (i % 2 === 0) {
        s.ws.send(text);
        continue;
      }
      const parts = [text.slice(0, 7), text.slice(7, 40), text.slice(40)];
      parts.forEach((p, k) => s.ws.send(p, { fin: k === parts.length - 1 }));
    }
    const replies = await s.count(n);
    expect(replies.map((m) => m.body.in_reply_to).sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    for (const m of replies) expect(m.body.type).toBe('session_valid');
  });
});
