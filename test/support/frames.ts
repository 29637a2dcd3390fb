// Builders of L3 frames as hex strings (IPv4, UDP, IPv6 with extension headers, ICMPv6/NDP, ARP) for the
// port-security tests. Checksums are zero: the bridge does not verify them.

import { parseIpv6Prefix } from '../../src/bridge/lock.js';

export const hex = (n: number, bytes: number): string => n.toString(16).padStart(2 * bytes, '0');
export const mac = (m: string): string => m.replaceAll(':', '');
export const v4 = (a: string): string => a.split('.').map((o) => hex(Number(o), 1)).join('');
export const v6 = (a: string): string => Buffer.from(parseIpv6Prefix(a)![0]).toString('hex');
export const len = (h: string): number => h.length / 2;

/** IPv4 header (no options, checksum 0) + payload; frag = flags/fragment offset word. */
export const ipv4 = (src: string, dst: string, proto: number, payload: string, frag = 0): string =>
  '4500' + hex(20 + len(payload), 2) + '0000' + hex(frag, 2) + '40' + hex(proto, 1) + '0000' + v4(src) + v4(dst) + payload;
export const udp = (sport: number, dport: number, data = '00000000'): string => hex(sport, 2) + hex(dport, 2) + hex(8 + len(data), 2) + '0000' + data;
/** IPv6 header + payload (next header nh). */
export const ipv6 = (src: string, dst: string, nh: number, payload: string): string =>
  '60000000' + hex(len(payload), 2) + hex(nh, 1) + 'ff' + v6(src) + v6(dst) + payload;
export const icmp6 = (type: number, body: string): string => hex(type, 1) + '00' + '0000' + body;
export const llOpt = (type: 1 | 2, m: string): string => hex(type, 1) + '01' + mac(m);
export const ns = (target: string, opts = ''): string => icmp6(135, '00000000' + v6(target) + opts);
export const na = (target: string, opts = ''): string => icmp6(136, '60000000' + v6(target) + opts);
export const ra = (): string => icmp6(134, '40000708' + '00000000' + '00000000');
/** Hop-by-Hop (or Destination Options) header of 8 bytes: PadN. */
export const opts8 = (nh: number): string => hex(nh, 1) + '00' + '0104' + '00000000';
/** Fragment header: offset in 8-byte units, M flag. */
export const fragHdr = (nh: number, offset: number, more: boolean): string => hex(nh, 1) + '00' + hex((offset << 3) | (more ? 1 : 0), 2) + '12345678';

export const arp = (op: number, sha: string, spa: string, tpa: string): string =>
  '0001' + '0800' + '06' + '04' + hex(op, 2) + mac(sha) + v4(spa) + '000000000000' + v4(tpa);
