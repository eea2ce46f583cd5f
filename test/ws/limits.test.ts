import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { browser, clientFrame, createSession, eventually, fetchRaw, Peer, rawUpgrade, service, settle, start, stopAll } from './helpers.js';

afterEach(stopAll);

describe('listener', () => {
  it('holds a burst of 1,000 connection attempts made while its event loop is busy: none is dropped', async () => {
    const { server } = await start();
    const port = Number(new URL(server.url).port);
    const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
    const sockets: Socket[] = [];
    try {
      for (let i = 0; i < 1000; i++) sockets.push(connect(port, '127.0.0.1'));
      // Node connects on the next tick; ticks run before the loop polls for I/O again.
      await new Promise((resolve) => process.nextTick(resolve));
      // Still the same turn of the event loop: the gateway has accepted none of them, so the
      // kernel holds every completed handshake in the listener's queue, or drops the attempt
      // (a full queue: the client retries after a second). `ss` shows the queue and its size.
      const listener = () =>
        execFileSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' })
          .trim()
          .split(/\s+/);
      const until = Date.now() + 5000;
      while (Number(listener()[1]) < 1000 && Date.now() < until);
      const [, queued, size] = listener();
      expect(Number(size)).toBe(Math.min(4096, somaxconn));
      expect(Number(queued)).toBe(1000);
      // Back in the loop, the gateway accepts every one of them.
      let connected = 0;
      await Promise.all(sockets.map((s) => new Promise((resolve) => s.once('connect', () => resolve(++connected)))));
      expect(connected).toBe(1000);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });
});

describe('rate limit (browser role)', () => {
  it('answers the excess over GATEWAY_RATE_LIMIT a second with 1002, then refills with time', async () => {
    const { server, clock } = await start({ GATEWAY_RATE_LIMIT: '100' });
    const b = browser(server.url);
    await b.opened;
    const ids: number[] = [];
    // unsubscribe_session: never a failed auth answer, so the failed-auth throttle stays out of it.
    for (let i = 0; i < 150; i++) ids.push(b.post('unsubscribe_session', { session_id: `s${i}` }));
    const replies = await b.count(150, (m) => m.body.in_reply_to !== undefined);
    const limited = replies.filter((m) => m.body.type === 'error');
    expect(limited).toHaveLength(50);
    for (const m of limited) expect(m.body).toMatchObject({ code: 1002, text: 'Rate limited: at most 100 messages a second' });
    expect(new Set(replies.map((m) => m.body.in_reply_to))).toEqual(new Set(ids));
    expect(b.ws.readyState).toBe(WebSocket.OPEN);
    b.messages.length = 0;
    clock.advance(500); // half a second: 50 more
    for (let i = 0; i < 60; i++) b.post('unsubscribe_session', { session_id: `u${i}` });
    const next = await b.count(60);
    expect(next.filter((m) => m.body.type === 'error')).toHaveLength(10);
  });

  it('each browser connection has its own budget from its first frame, given back when it closes (a new one starts full)', async () => {
    const { server } = await start({ GATEWAY_RATE_LIMIT: '20' });
    const pages = [browser(server.url), browser(server.url), browser(server.url)];
    await Promise.all(pages.map((p) => p.opened));
    expect(server.frameBudgets.size).toBe(0); // silent connections hold none
    for (const p of pages) for (let i = 0; i < 25; i++) p.post('unsubscribe_session', { session_id: `s${i}` });
    for (const p of pages) expect((await p.count(25)).filter((m) => m.body.type === 'error')).toHaveLength(5);
    expect(server.frameBudgets.size).toBe(3);
    pages[0]!.ws.close();
    await eventually(() => expect(server.frameBudgets.size).toBe(2));
    const next = browser(server.url); // takes the row given back, full again
    await next.opened;
    for (let i = 0; i < 20; i++) next.post('unsubscribe_session', { session_id: `n${i}` });
    expect((await next.count(20)).filter((m) => m.body.type === 'error')).toEqual([]);
    expect(server.frameBudgets.size).toBe(3);
  });

  it('never limits a service connection', async () => {
    const { server } = await start({ GATEWAY_RATE_LIMIT: '10' });
    const s = service(server.url);
    await s.opened;
    for (let i = 0; i < 200; i++) s.post('verify_token', { token: `t${i}` });
    const replies = await s.count(200);
    expect(replies.filter((m) => m.body.type === 'error')).toEqual([]);
  });
});

describe('exchange_session budget per address (each writes a token family to the store)', () => {
  it('answers the excess over GATEWAY_EXCHANGE_LIMIT a minute from one address with 1002, across connections; refills with time; services are exempt', async () => {
    const { server, clock } = await start({ GATEWAY_EXCHANGE_LIMIT: '6' });
    const sid = await createSession(server.url);
    const pages = [browser(server.url), browser(server.url), browser(server.url)];
    await Promise.all(pages.map((p) => p.opened));
    const replies: Record<string, unknown>[] = [];
    for (let i = 0; i < 9; i++) replies.push(await pages[i % 3]!.call('exchange_session', { session_id: sid }));
    expect(replies.map((r) => r.type)).toEqual([...Array(6).fill('token_generated'), 'error', 'error', 'error']);
    for (const r of replies.slice(6)) expect(r).toMatchObject({ code: 1002, text: 'Rate limited: at most 6 exchange_session a minute from one address' });
    // A new connection from the same address gets no fresh budget.
    const fresh = browser(server.url);
    await fresh.opened;
    expect(await fresh.call('exchange_session', { session_id: sid })).toMatchObject({ type: 'error', code: 1002 });
    // Other requests are not charged to it.
    expect((await fresh.call('validate_session', { session_id: sid })).type).toBe('session_valid');
    clock.advance(20_000); // a third of a minute: two more
    const later = [
      await fresh.call('exchange_session', { session_id: sid }),
      await fresh.call('exchange_session', { session_id: sid }),
      await fresh.call('exchange_session', { session_id: sid }),
    ];
    expect(later.map((r) => r.type)).toEqual(['token_generated', 'token_generated', 'error']);
    const s = service(server.url);
    await s.opened;
    for (let i = 0; i < 10; i++) expect((await s.call('exchange_session', { session_id: sid })).type).toBe('token_generated');
  });
});

describe('frame size', () => {
  it('processes a frame of exactly GATEWAY_MAX_MESSAGE_BYTES', async () => {
    const { server } = await start({ GATEWAY_MAX_MESSAGE_BYTES: '1024' });
    const s = service(server.url);
    await s.opened;
    const head = JSON.stringify({ src: 'c1', dest: 'gateway', body: { type: 'create_session', msg_id: 1, user_id: 'u', data: { pad: '' } } });
    const frame = head.replace('"pad":""', `"pad":"${'x'.repeat(1024 - head.length)}"`);
    expect(Buffer.byteLength(frame)).toBe(1024);
    s.send(frame);
    expect((await s.next()).body).toMatchObject({ type: 'session_created', in_reply_to: 1 });
  });

  it('answers error 12 keeping the msg_id for frames up to 16 times the limit, from a service or a browser, and stays open', async () => {
    const { server } = await start({ GATEWAY_MAX_MESSAGE_BYTES: '1024' });
    const s = service(server.url);
    await s.opened;
    for (const size of [1025, 4096, 16 * 1024]) {
      const head = JSON.stringify({ src: 'c1', dest: 'gateway', body: { type: 'validate_session', msg_id: size, session_id: '' } });
      s.send(head.replace('"session_id":""', `"session_id":"${'x'.repeat(size - head.length)}"`));
      expect((await s.next()).body).toEqual({ type: 'error', in_reply_to: size, code: 12, text: `Message too large (${size} bytes): the limit is 1024 bytes` });
    }
    const b = browser(server.url);
    await b.opened;
    for (const size of [1025, 4096, 16 * 1024]) {
      const head = JSON.stringify({ src: 'c1', dest: 'gateway', body: { type: 'validate_session', msg_id: size, session_id: '' } });
      const frame = head.replace('"session_id":""', `"session_id":"${'x'.repeat(size - head.length)}"`);
      expect(Buffer.byteLength(frame)).toBe(size);
      b.send(frame);
      const r = await b.next();
      expect(r).toEqual({
        src: 'gateway',
        dest: 'c1',
        body: { type: 'error', in_reply_to: size, code: 12, text: `Message too large (${size} bytes): the limit is 1024 bytes` },
      });
    }
    b.send('x'.repeat(2000)); // not JSON either: no msg_id to answer
    expect((await b.next()).body).toEqual({ type: 'error', code: 12, text: 'Message too large (2000 bytes): the limit is 1024 bytes' });
    expect((await b.call('validate_session', { session_id: 'y' })).type).toBe('session_invalid');
  });

  it('closes with 1009 beyond 16 times the limit, a service or a browser, however the message is fragmented', async () => {
    const { server } = await start({ GATEWAY_MAX_MESSAGE_BYTES: '1024' });
    const s = service(server.url);
    await s.opened;
    s.send('x'.repeat(16 * 1024 + 1));
    expect((await s.closed).code).toBe(1009);
    const b = browser(server.url);
    await b.opened;
    b.send('x'.repeat(16 * 1024 + 1));
    expect((await b.closed).code).toBe(1009);
    // An unfinished message (fragments without FIN) is counted as its fragments arrive.
    const sid = await createSession(server.url);
    const peer = await rawUpgrade(server.port, `sid=${sid}`);
    const fragment = (opcode: number) => {
      const f = clientFrame(opcode, 'y'.repeat(6000));
      f[0] = f[0]! & 0x7f;
      return f;
    };
    peer.socket.write(Buffer.concat([fragment(1), fragment(0), fragment(0)]));
    await peer.closed;
    expect(peer.frames.find((f) => f.opcode === 8)!.payload.readUInt16BE(0)).toBe(1009);
    await eventually(async () => expect(await server.metrics.text()).toMatch(/gateway_connections_closed_total\{reason="too_large"\} 3/));
  });

  it('closes with 1008 a message in more than 16,384 fragments, however small, counted as too_many_fragments', async () => {
    const { server } = await start();
    const sid = await createSession(server.url);
    const peer = await rawUpgrade(server.port, `sid=${sid}`);
    const fragment = (opcode: number) => {
      const f = clientFrame(opcode, 'y');
      f[0] = f[0]! & 0x7f;
      return f;
    };
    peer.socket.write(Buffer.concat([fragment(1), ...Array.from({ length: 16_384 }, () => fragment(0))]));
    await peer.closed;
    expect(peer.frames.find((f) => f.opcode === 8)!.payload.readUInt16BE(0)).toBe(1008);
    await eventually(async () => expect(await server.metrics.text()).toMatch(/gateway_connections_closed_total\{reason="too_many_fragments"\} 1/));
  });

  it("a browser's pings are charged as messages: past GATEWAY_RATE_LIMIT a second it is closed with 1008", async () => {
    const { server } = await start({ GATEWAY_RATE_LIMIT: '20' });
    const sid = await createSession(server.url);
    const peer = await rawUpgrade(server.port, `sid=${sid}`);
    // Fewer than the pongs a peer may leave unread, more than its message rate.
    peer.socket.write(Buffer.concat(Array.from({ length: 50 }, (_, i) => clientFrame(9, `p${i}`))));
    await peer.closed;
    const close = peer.frames.find((f) => f.opcode === 8)!;
    expect(close.payload.readUInt16BE(0)).toBe(1008);
    expect(close.payload.subarray(2).toString()).toBe('Too many pings');
    const pongs = peer.frames.filter((f) => f.opcode === 10).length;
    expect(pongs).toBeGreaterThanOrEqual(20);
    expect(pongs).toBeLessThan(50);
  });

  it("a browser's pongs are charged as messages too: past GATEWAY_RATE_LIMIT a second it is closed with 1008", async () => {
    const { server, http } = await start({ GATEWAY_RATE_LIMIT: '20' });
    const sid = await createSession(server.url);
    const peer = await rawUpgrade(server.port, `sid=${sid}`);
    // Unsolicited pongs (RFC 6455 section 5.5.3): 20 pass, the 21st closes.
    peer.socket.write(Buffer.concat(Array.from({ length: 20 }, (_, i) => clientFrame(10, `p${i}`))));
    peer.socket.write(clientFrame(1, JSON.stringify({ src: 'c', dest: 'g', body: { type: 'init', msg_id: 1, node_id: 'c' } })));
    await eventually(() => expect(peer.frames.filter((f) => f.opcode === 1)).toHaveLength(1));
    expect(JSON.parse(peer.frames.find((f) => f.opcode === 1)!.payload.toString()).body).toMatchObject({ type: 'error', code: 1002, in_reply_to: 1 });
    peer.socket.write(Buffer.concat(Array.from({ length: 1000 }, (_, i) => clientFrame(10, `q${i}`))));
    await peer.closed;
    const close = peer.frames.find((f) => f.opcode === 8)!;
    expect(close.payload.readUInt16BE(0)).toBe(1008);
    expect(close.payload.subarray(2).toString()).toBe('Too many pongs');
    await eventually(async () => expect((await fetchRaw(`${http}/metrics`)).body).toMatch(/gateway_connections_closed_total\{reason="ping_flood"\} 1/));
  });

  it('a browser that keeps sending past its rate is refused for at most ten seconds of its rate, then closed with 1008', async () => {
    const { server, http } = await start({ GATEWAY_RATE_LIMIT: '100' });
    const sid = await createSession(server.url);
    const peer = await rawUpgrade(server.port, `sid=${sid}`);
    const frame = (i: number) =>
      clientFrame(1, JSON.stringify({ src: 'c', dest: 'g', body: { type: 'unsubscribe_session', msg_id: i + 1, session_id: `s${i}` } }));
    // 100 served, 1,000 refused (error 1002, addressed), and the one that spends the allowance
    // is answered as it is closed: the rest is never read.
    peer.socket.write(Buffer.concat(Array.from({ length: 5000 }, (_, i) => frame(i))));
    await peer.closed;
    const replies = peer.frames.filter((f) => f.opcode === 1).map((f) => JSON.parse(f.payload.toString()) as { body: Record<string, unknown> });
    expect(replies.filter((m) => m.body.type === 'unsubscribed')).toHaveLength(100);
    const refused = replies.filter((m) => m.body.type === 'error');
    expect(refused).toHaveLength(1001);
    for (const m of refused) expect(m.body).toMatchObject({ code: 1002, text: 'Rate limited: at most 100 messages a second', in_reply_to: expect.any(Number) });
    const close = peer.frames.find((f) => f.opcode === 8)!;
    expect(close.payload.readUInt16BE(0)).toBe(1008);
    expect(close.payload.subarray(2).toString()).toBe('Too many messages over the rate limit');
    await eventually(async () => expect((await fetchRaw(`${http}/metrics`)).body).toMatch(/gateway_connections_closed_total\{reason="rate_flood"\} 1/));
  });

  it('answers a binary frame with error 12, addressed when its ends and msg_id can be read', async () => {
    const { server } = await start();
    const b = browser(server.url);
    await b.opened;
    b.ws.send(Buffer.from(JSON.stringify({ src: 'c', dest: 'g', body: { type: 'init', msg_id: 1, node_id: 'n' } })));
    expect(await b.next()).toEqual({
      src: 'g',
      dest: 'c',
      body: { type: 'error', in_reply_to: 1, code: 12, text: 'Binary frames are not accepted: send each message as one text frame' },
    });
    b.ws.send(Buffer.from([0xff, 0x00, 0x01]));
    expect((await b.next()).body).toEqual({ type: 'error', code: 12, text: 'Binary frames are not accepted: send each message as one text frame' });
  });
});

describe('slow reader', () => {
  it('closes with 1008 a peer whose unsent output passes GATEWAY_MAX_BUFFERED_BYTES and that reads none of it meanwhile', async () => {
    const { server, http } = await start({ GATEWAY_MAX_BUFFERED_BYTES: String(64 * 1024) }, { slowReaderMs: 300 });
    const s = service(server.url);
    await s.opened;
    // The peer stops reading: the kernel buffers fill, then the server's queue grows.
    // Each reply carries the session's 32 KiB of data.
    const { session_id } = await s.call('create_session', { user_id: 'u', data: { pad: 'p'.repeat(32 * 1024) } });
    s.ws.pause();
    const link = [...server.links][0]!;
    let sent = 0;
    for (let round = 0; round < 200 && link.closeReason === undefined; round++) {
      for (let i = 0; i < 50; i++) s.post('validate_session', { session_id });
      sent += 50;
      await settle(10);
    }
    await eventually(() => expect(link.closeReason).toBe('slow_reader'), 5000);
    s.ws.resume();
    const closed = await s.closed;
    expect(closed).toEqual({ code: 1008, reason: 'Slow reader: unsent output over the limit' });
    await eventually(async () => expect((await fetchRaw(`${http}/metrics`)).body).toMatch(/gateway_connections_closed_total\{reason="slow_reader"\} 1/));
    // Memory stayed bounded: the server stopped producing for it well before answering all.
    expect(s.messages.length).toBeLessThan(sent);
  });

  it('a reply larger than GATEWAY_MAX_BUFFERED_BYTES reaches a peer that reads it, and what was sent after it is answered', async () => {
    const { server } = await start({ GATEWAY_MAX_BUFFERED_BYTES: String(64 * 1024) }, { slowReaderMs: 300 });
    const s = service(server.url);
    await s.opened;
    // 100 sessions of 40 KiB of data each: one list_sessions reply of about 4 MB.
    for (let i = 0; i < 100; i++) await s.call('create_session', { user_id: 'big', data: { pad: `${i}`.padEnd(40 * 1024, 'p') } });
    s.post('list_sessions', { user_id: 'big' });
    const after = s.call('init', { node_id: 'n' });
    const list = await s.next((m) => m.body.type === 'sessions');
    expect((list.body.sessions as unknown[]).length).toBe(100);
    expect((await after).type).toBe('init_ok');
    const link = [...server.links][0]!;
    expect(link.closeReason).toBeUndefined();
  });
});

describe('pings from the peer', () => {
  const validate = (sid: string, id: number) =>
    clientFrame(1, JSON.stringify({ src: 'c', dest: 'g', body: { type: 'validate_session', msg_id: id, session_id: sid } }));

  it('answers each with a pong carrying its data, and serves what comes between them', async () => {
    const { server } = await start();
    const sid = await createSession(server.url);
    const peer = await rawUpgrade(server.port, `sid=${sid}`);
    const pings = Array.from({ length: 60 }, (_, i) => clientFrame(9, `p${i}`));
    peer.socket.write(Buffer.concat([validate(sid, 1), ...pings, validate(sid, 2)]));
    await eventually(() => expect(peer.frames.filter((f) => f.opcode === 1)).toHaveLength(2));
    const pongs = peer.frames.filter((f) => f.opcode === 10).map((f) => f.payload.toString());
    expect(pongs).toEqual(Array.from({ length: 60 }, (_, i) => `p${i}`));
    expect(peer.frames.some((f) => f.opcode === 8)).toBe(false);
    peer.socket.destroy();
  });

  it('closes a ping flood (pongs piling up unread) with 1008 "Too many pings", after answering what came before it', async () => {
    const { server } = await start();
    const sid = await createSession(server.url);
    const peer = await rawUpgrade(server.port, `sid=${sid}`);
    // One burst: the pongs of its first pings are still on their way out when the 61st is read.
    const flood = Buffer.concat(Array.from({ length: 4000 }, (_, i) => clientFrame(9, `ping-${i}`.padEnd(100, '.'))));
    peer.socket.write(Buffer.concat([validate(sid, 1), flood]));
    await peer.closed;
    expect(peer.frames[0]!.opcode).toBe(1);
    expect(JSON.parse(peer.frames[0]!.payload.toString()).body).toMatchObject({ type: 'session_valid', in_reply_to: 1 });
    const close = peer.frames.find((f) => f.opcode === 8)!;
    expect(close.payload.readUInt16BE(0)).toBe(1008);
    expect(close.payload.subarray(2).toString()).toBe('Too many pings');
    const pongs = peer.frames.filter((f) => f.opcode === 10).length;
    expect(pongs).toBeGreaterThanOrEqual(60);
    expect(pongs).toBeLessThan(4000);
  });
});

describe('heartbeat', () => {
  it('terminates a peer that stops answering pings, keeps one that answers', async () => {
    const { server, clock } = await start({}, { heartbeatMs: 30_000 });
    const dead = new Peer(server.url, { autoPong: false });
    await dead.opened;
    const live = browser(server.url);
    await live.opened;
    let pings = 0;
    dead.ws.on('ping', () => pings++);
    const liveLink = () => [...server.links].find((l) => l !== deadLink)!;
    const deadLink = [...server.links][0]!;
    clock.advance(30_000); // ping
    await eventually(() => expect(pings).toBe(1));
    await eventually(() => expect(liveLink().alive).toBe(true)); // the live peer's pong came back
    expect(deadLink.alive).toBe(false);
    clock.advance(30_000); // no pong from `dead`: cut
    expect((await dead.closed).code).toBe(1006);
    await eventually(() => expect(liveLink().alive).toBe(true));
    clock.advance(30_000);
    await settle(50);
    expect(live.ws.readyState).toBe(WebSocket.OPEN);
    await eventually(async () => expect(await server.metrics.text()).toMatch(/gateway_connections_closed_total\{reason="heartbeat"\} 1/));
  });
});

describe('failed-auth throttle (issue 6)', () => {
  it('refuses further requests with 1002 after GATEWAY_FAILED_AUTH_LIMIT failed answers a minute', async () => {
    const { server, clock } = await start({ GATEWAY_FAILED_AUTH_LIMIT: '5' });
    const b = browser(server.url);
    await b.opened;
    for (let i = 0; i < 3; i++) expect((await b.call('validate_session', { session_id: `guess${i}` })).type).toBe('session_invalid');
    for (let i = 0; i < 2; i++) expect((await b.call('verify_token', { token: `t${i}` })).type).toBe('token_invalid');
    const r = await b.call('validate_session', { session_id: 'guess' });
    expect(r).toMatchObject({ type: 'error', code: 1002, text: 'Too many failed authentication attempts; try again later' });
    expect((await b.call('unsubscribe_session', { session_id: 'x' })).type).toBe('error');
    // The same address cannot open a new connection to guess on: 429 at the upgrade.
    await expect(browser(server.url).opened).rejects.toThrow('HTTP 429');
    // A minute later the window has room again.
    clock.advance(60_001);
    expect((await b.call('validate_session', { session_id: 'guess' })).type).toBe('session_invalid');
  });

  it('counts requests in flight, so pipelined guesses do not slip past the limit', async () => {
    const { server } = await start({ GATEWAY_FAILED_AUTH_LIMIT: '5' });
    const b = browser(server.url);
    await b.opened;
    for (let i = 0; i < 40; i++) b.post('validate_session', { session_id: `g${i}` });
    const replies = await b.count(40);
    expect(replies.filter((m) => m.body.type === 'session_invalid')).toHaveLength(5);
    expect(replies.filter((m) => m.body.code === 1002)).toHaveLength(35);
  });

  it('does not count successes, and exempts service connections', async () => {
    const { server } = await start({ GATEWAY_FAILED_AUTH_LIMIT: '2' });
    const s = service(server.url);
    await s.opened;
    const { session_id } = await s.call('create_session', { user_id: 'u' });
    for (let i = 0; i < 10; i++) expect((await s.call('validate_session', { session_id: `g${i}` })).type).toBe('session_invalid');
    const b = browser(server.url);
    await b.opened;
    for (let i = 0; i < 10; i++) expect((await b.call('validate_session', { session_id })).type).toBe('session_valid');
    expect((await b.call('validate_session', { session_id: 'bad' })).type).toBe('session_invalid');
    expect((await b.call('validate_session', { session_id })).type).toBe('session_valid');
  });
});
