/**
 * The client tests' harness: the server's WebSocket test helpers (test/ws/helpers.ts: a real
 * gateway in this process on a free port with a ManualClock, service connections that set
 * sessions up and end them, `eventually`), a WebSocket server that accepts and never answers,
 * and one that does what each test scripts.
 */
import { WebSocketServer, type WebSocket } from 'ws';
import { stopAll as stopGateways } from '../../test/ws/helpers.js';

export { createSession, eventually, SERVICE_KEY, service, start } from '../../test/ws/helpers.js';

const silentServers = new Set<WebSocketServer>();

/** A WebSocket server that accepts every connection and never sends anything; returns its url. */
export async function silentServer(): Promise<string> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  silentServers.add(wss);
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  return `ws://127.0.0.1:${(wss.address() as { port: number }).port}/`;
}

/**
 * A WebSocket server that hands each connection, numbered from 1, to `onConnection` (which
 * may close it at once, send it frames, or keep it); returns its url.
 */
export async function scriptedServer(onConnection: (ws: WebSocket, n: number) => void): Promise<string> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  silentServers.add(wss);
  let n = 0;
  wss.on('connection', (ws) => onConnection(ws, ++n));
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  return `ws://127.0.0.1:${(wss.address() as { port: number }).port}/`;
}

/** Drains every gateway, service connection and silent server started here (afterEach). */
export async function stopAll(): Promise<void> {
  await stopGateways();
  for (const wss of silentServers) {
    for (const ws of wss.clients) ws.terminate();
    await new Promise((r) => wss.close(r));
  }
  silentServers.clear();
}
