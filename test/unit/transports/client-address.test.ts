/** The key the per-address limits count a client under (client-address.ts `limitKey`). */
import { describe, expect, it } from 'vitest';
import { limitKey } from '../../../src/transports/client-address.js';

describe('limitKey', () => {
  it('an IPv4 address is its own key', () => {
    for (const a of ['10.0.0.1', '127.0.0.1', '255.255.255.255']) expect(limitKey(a)).toBe(a);
  });

  it('an IPv6 address counts under its /64, whatever its spelling', () => {
    const cases: [string, string][] = [
      ['2001:db8:0:7::1', '2001:db8:0:7::/64'],
      ['2001:DB8:0000:0007:ffff:ffff:ffff:ffff', '2001:db8:0:7::/64'],
      ['2001:db8:0:7:1:2:3:4', '2001:db8:0:7::/64'],
      ['2001:db8::7:1:2:3:4', '2001:db8:0:7::/64'],
      ['2001:db8::', '2001:db8:0:0::/64'],
      ['::1', '0:0:0:0::/64'],
      ['::', '0:0:0:0::/64'],
      ['fe80::1%eth0', 'fe80:0:0:0::/64'],
      ['64:ff9b::192.0.2.1', '64:ff9b:0:0::/64'],
      ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4::/64'],
      ['1:2:3::6:1.2.3.4', '1:2:3:0::/64'],
    ];
    expect(cases.map(([a]) => [a, limitKey(a)])).toEqual(cases);
  });

  it('anything that is not an address is its own key', () => {
    for (const a of ['unknown', '', 'not:an:address']) expect(limitKey(a)).toBe(a);
  });
});
