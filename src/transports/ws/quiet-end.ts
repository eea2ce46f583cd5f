import { Socket } from 'node:net';
import type { Duplex, Writable } from 'node:stream';
import * as ws from 'ws';

type End = (this: Writable, ...args: unknown[]) => Writable;

/**
 * Wraps a stream's `end` so that a call with no argument on a stream already ending (and not
 * corked) returns at once. Node's own `end` does nothing else in that case but build an
 * error it throws away (ERR_STREAM_ALREADY_FINISHED or ERR_STREAM_DESTROYED), with a full
 * stack trace; ws makes three such calls for every connection that closes after a close
 * handshake (its `socketOnEnd` and `socketOnClose` end its receiver, which the close frame
 * already ended, and the socket, which the handshake already ended). Every other call,
 * including any with a chunk or a callback, goes to the stream's own `end`.
 */
export function quietEnd(end: End): End {
  return function endUnlessEnded(this: Writable, ...args: unknown[]): Writable {
    if (args.length === 0 && this.writableEnded && this.writableCorked === 0) return this;
    return end.apply(this, args);
  };
}

const quietSocketEnd = quietEnd(Socket.prototype.end as End);

/** Gives one upgraded socket the quiet `end` (an own property: other sockets keep Node's). */
export function quietSocket(socket: Duplex): void {
  if (socket instanceof Socket) (socket as unknown as { end: End }).end = quietSocketEnd;
}

/**
 * Gives ws's frame receiver the quiet `end`, once per process (a second call finds it in
 * place). ws exports the class but its types do not declare it: if a later ws has none, or
 * one with an `end` of its own, nothing is changed and closes cost what they did.
 */
export function quietReceivers(): void {
  const proto = (ws as unknown as { Receiver?: { prototype: Writable } }).Receiver?.prototype;
  if (proto === undefined || Object.prototype.hasOwnProperty.call(proto, 'end')) return;
  Object.defineProperty(proto, 'end', { value: quietEnd(proto.end as End), writable: true, configurable: true });
}
