import type { WebSocketConstructor, WebSocketLike } from '../../client/src/gateway-client.js';

type EmitterSocket = WebSocketLike & { emit(event: string | symbol, ...args: unknown[]): boolean };

/**
 * `Ctor`, telling `onStatus` the HTTP status with which the gateway refused an upgrade (401:
 * a wrong service key). The client sees only the close that follows (1006), and `ws` gives the
 * status only in its 'unexpected-response' event, whose listener would then have to abort the
 * handshake itself. So the event is looked at as it is emitted, and `ws` still finds no
 * listener and aborts as it always does. A constructor that is not an EventEmitter (not `ws`)
 * is returned as it is.
 */
export function reportRefusedUpgrades(Ctor: WebSocketConstructor, onStatus: (status: number) => void): WebSocketConstructor {
  if (typeof (Ctor.prototype as Partial<EmitterSocket> | undefined)?.emit !== 'function') return Ctor;
  const Base = Ctor as unknown as new (...args: unknown[]) => EmitterSocket;
  return class extends Base {
    override emit(event: string | symbol, ...args: unknown[]): boolean {
      if (event === 'unexpected-response') {
        const status = (args[1] as { statusCode?: unknown } | undefined)?.statusCode;
        if (typeof status === 'number') onStatus(status);
      }
      return super.emit(event, ...args);
    }
  } as unknown as WebSocketConstructor;
}
