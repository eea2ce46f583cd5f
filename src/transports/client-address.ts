import type { IncomingMessage } from 'node:http';
import { isIP, type BlockList } from 'node:net';
import type { TLSSocket } from 'node:tls';

/** Who sent a request, as far as the gateway may believe it. */
export interface Client {
  /** The client's address: the peer's, or the one a trusted proxy forwarded. */
  address: string;
  /** What the per-address limits count it under: `limitKey(address)`. */
  key: string;
  /** Over https: TLS here, or a trusted proxy saying `X-Forwarded-Proto: https`. */
  https: boolean;
}

/** `::ffff:10.0.0.1` is the IPv4 peer 10.0.0.1 on a dual-stack socket. */
export function plain(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/**
 * The key the per-address limits count a client under: an IPv4 address itself; an IPv6
 * address's /64 network (`2001:db8:0:1::/64`), the block one host or subscriber is commonly
 * given whole (RFC 6177), so that walking through the addresses of its own block gains a client
 * no budget. Anything else (not an address) is its own key.
 */
export function limitKey(address: string): string {
  if (isIP(address) !== 6) return address;
  const bare = address.split('%', 1)[0]!;
  const groups = (part: string): string[] => (part === '' ? [] : part.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g])));
  const cut = bare.indexOf('::');
  const head = groups(cut === -1 ? bare : bare.slice(0, cut));
  const tail = cut === -1 ? [] : groups(bare.slice(cut + 2));
  const all = cut === -1 ? head : [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail];
  return `${all
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
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
  if (!trusts(trusted, peer)) return { address: peer, key: limitKey(peer), https: tls };
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
  return { address, key: limitKey(address), https: tls || proto === 'https' };
}
