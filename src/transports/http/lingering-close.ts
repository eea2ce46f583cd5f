import type { ServerResponse } from 'node:http';
import type { Server, Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** How long a connection being closed is still read for, at most. */
export const LINGER_MS = 2000;
/** How much more of it is read (and dropped) before it is closed all the same. */
export const LINGER_BYTES = 1 << 20;
/** How often the bytes read are looked at meanwhile. */
const LINGER_CHECK_MS = 50;

/** Connections lingering, by server: Node's server no longer tracks those it handed over (CONNECT, upgrades). */
const lingering = new WeakMap<Server, Set<Duplex>>();

/** Closes every connection of `server` still lingering (a drain's end: no one waits for their 2 s). */
export function closeLingering(server: Server): void {
  for (const socket of lingering.get(server) ?? []) socket.destroy();
}

/** Who decides, for the connections of a server, whether one may linger (see `admitLingering`). */
const admitters = new WeakMap<Server, (socket: Duplex) => boolean>();

/**
 * Has `admit` asked before a connection of `server` lingers: the connection-count cap of its
 * address (PendingHeads) counts a lingering connection, so that connections closed one after
 * another cannot pile up past the cap. False: no room; the connection closes as soon as its
 * answer is written, without lingering.
 */
export function admitLingering(server: Server, admit: (socket: Duplex) => boolean): void {
  admitters.set(server, admit);
}

/**
 * Closes a connection whose client may still be sending (a body refused unread, a head too
 * large) without losing the answer already written: ends the gateway's half once the answer is
 * out, then reads and drops what still comes, and closes when the client has closed its half,
 * LINGER_MS have passed or LINGER_BYTES have come, whichever is first. Closed at once, the
 * kernel answers the client's next bytes with a reset, and a reset makes the client's side drop
 * what it has not read yet, the answer included (RFC 9112 section 9.6: a staged close).
 */
export function lingeringClose(socket: Duplex): void {
  if (socket.destroyed) return;
  // A reset from the client while the gateway still reads (it gave up first) is no fault; with
  // no listener, a socket no HTTP response owns (CONNECT, an upgrade) would throw it.
  socket.on('error', () => socket.destroy());
  // Node sets `server` on each connection it accepts.
  const server = (socket as Duplex & { server?: Server | null }).server;
  const admitted = server == null ? true : (admitters.get(server)?.(socket) ?? true);
  const read = () => (socket as Partial<Socket>).bytesRead ?? 0;
  const from = read();
  const cut = setTimeout(() => socket.destroy(), LINGER_MS);
  // Once the answer is written: closing sooner would drop what is left of it.
  const closeWhenWritten = () => {
    if (socket.writableFinished) socket.destroy();
    else socket.once('finish', () => socket.destroy());
  };
  socket.once('close', () => clearTimeout(cut));
  socket.end();
  // No room to linger (its address is at the cap): a reset may drop the answer, but the cap holds.
  if (!admitted) {
    closeWhenWritten();
    return;
  }
  // Looked at now and then, not on each chunk: while Node's parser still reads the connection,
  // what it reads past the request's end reaches no listener.
  const check = setInterval(() => {
    if (read() - from > LINGER_BYTES) closeWhenWritten();
  }, LINGER_CHECK_MS);
  socket.once('end', closeWhenWritten);
  let held: Set<Duplex> | undefined;
  if (server != null) {
    held = lingering.get(server);
    if (held === undefined) lingering.set(server, (held = new Set()));
    held.add(socket);
  }
  socket.once('close', () => {
    clearInterval(check);
    held?.delete(socket);
  });
  socket.resume();
}

/**
 * Marks an answer as the connection's last (`Connection: close`) and has the connection closed
 * by `lingeringClose` once it is written, instead of at once (Node's server calls the socket's
 * `destroySoon` after an answer that closes the connection); Node's parser reads and drops
 * the rest of the request meanwhile.
 */
export function closeAfter(res: ServerResponse): void {
  res.setHeader('Connection', 'close');
  const socket = res.socket as (Socket & { destroySoon?: () => void }) | null;
  if (socket !== null) socket.destroySoon = () => lingeringClose(socket);
}
