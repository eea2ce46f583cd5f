import type { IncomingMessage } from 'node:http';
import { isIP, type BlockList } from 'node:net';
import type { TLSSocket } from 'node:tls';

/** Who sent a request, as far as the gateway may believe it. */
export interface Client {
  /** The client's address: the peer's, or the one a trusted proxy forwarded. */
  address: string;
  /** Over https: TLS here, or a trusted proxy saying `X-Forwarded-Proto: https`. */
  https: boolean;
}

/** `::ffff:10.0.0.1` is the IPv4 peer 10.0.0.1 on a dual-stack socket. */
export function plain(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/** True when `address` is one of the trusted proxies. */
export function trusts(list: BlockList | undefined, address: string): boolean {
  if (list === undefined) return false;
  const family = isIP(address);
  return family !== 0 && list.check(address, family === 6 ? 'ipv6' : 'ipv4');
}

/**
 * The client behind a request. Forwarding headers are anyone's to write, so they are read
 * only when the peer is a trusted proxy (`GATEWAY_TRUSTED_PROXIES`): then the client is the
 * right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries further left
 * were written by the client and prove nothing), and the proto is the last one the proxy set.
 */
export function clientOf(req: IncomingMessage, trusted: BlockList | undefined): Client {
  const peer = plain(req.socket.remoteAddress ?? 'unknown');
  const tls = (req.socket as TLSSocket).encrypted === true;
  if (!trusts(trusted, peer)) return { address: peer, https: tls };
  let address = peer;
  const xff = req.headers['x-forwarded-for'];
  const hops = (Array.isArray(xff) ? xff.join(',') : (xff ?? ''))
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = plain(hops[i]!);
    if (isIP(hop) === 0) break; // garbage: stop at the last address known good
    address = hop;
    if (!trusts(trusted, hop)) break;
  }
  const xfp = req.headers['x-forwarded-proto'];
  const proto = (Array.isArray(xfp) ? xfp.join(',') : (xfp ?? '')).split(',').pop()?.trim().toLowerCase();
  return { address, https: tls || proto === 'https' };
}
