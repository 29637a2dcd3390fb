// Port security (src/bridge/lock.ts): every locking rule, RA guard and DHCP guard, with the exact frames,
// run through the engine so the verdict and the `drops` counter are checked together; the static FDB entry
// for a locked MAC (src/daemon/locking.ts).
import { beforeEach, describe, expect, it } from 'vitest';
import { Bridge } from '../../src/bridge/bridge.js';
import {
  checkFull, checkSecurity, eui64LinkLocal, type LockSpec, lockSpecFrom, parseIpv6Prefix, PortSecurity, SEC_MAX_TAGS, SECURITY_DROP_NAMES,
} from '../../src/bridge/lock.js';
import { EthernetHeader, parseEthernet } from '../../src/frame/ethernet.js';
import type { BridgePort } from '../../src/bridge/port.js';
import { parseMac } from '../../src/frame/mac.js';
import { PortLocks } from '../../src/daemon/locking.js';
import { addFakePort, BatchBuilder, eth, type FakeIo } from '../support/fake-io.js';
import { arp, fragHdr, icmp6, ipv4, ipv6, llOpt, mac, na, ns, opts8, ra, udp, v4, v6 } from '../support/frames.js';

const VM = '00:16:3e:00:01:00';
const OTHER = '00:16:3e:00:02:00';
const BCAST = 'ff:ff:ff:ff:ff:ff';
const LOCK = { mac: VM, ipv4: ['198.18.0.1', '198.18.5.0/24'], ipv6: ['2001:db8::1', '2001:db8:5::/64', 'fe80::1234'] };
const LL = ((): string => {
  const b = eui64LinkLocal(parseMac(VM)!);
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((b[i] << 8) | b[i + 1]).toString(16));
  return words.join(':');
})();

function lockOf(v: unknown): LockSpec {
  const r = lockSpecFrom(v);
  if (!('spec' in r)) throw new Error(JSON.stringify(r.problems));
  return r.spec;
}

describe('port security in the engine', () => {
  let br: Bridge;
  let batch: BatchBuilder;
  let vif: { port: BridgePort; io: FakeIo };
  let out: { port: BridgePort; io: FakeIo };

  beforeEach(() => {
    br = new Bridge({ name: 'xenbr0', maxPorts: 8, fdbMax: 256, ageingTimeMs: 300_000 });
    batch = new BatchBuilder();
    vif = addFakePort(br, batch, 'vif1.0');
    out = addFakePort(br, batch, 'peth0', { kind: 'uplink' });
  });

  const secure = (lock: unknown, guards = { raGuard: false, dhcpGuard: false }): void => {
    vif.port.security = PortSecurity.build(lockOf(lock), guards);
  };
  /** Sends one frame from the VM; returns the drop counter that moved, or 'pass' when it was forwarded. */
  const verdict = (frame: string): string => {
    const before = vif.port.drops();
    const sent = out.io.sent.length;
    batch.reset().add(frame);
    br.receive(vif.port, batch.slab, batch.desc, batch.count);
    const after = vif.port.drops();
    const moved = Object.keys(after).filter((k) => after[k as keyof typeof after] !== before[k as keyof typeof before]);
    if (moved.length > 1) throw new Error(`several counters moved: ${moved.join(', ')}`);
    if (moved.length === 1) {
      expect(out.io.sent.length).toBe(sent);
      return moved[0];
    }
    expect(out.io.sent.length).toBe(sent + 1);
    return 'pass';
  };

  describe('lock: { mac, ipv4, ipv6 }', () => {
    beforeEach(() => secure(LOCK));

    it('source MAC other than the locked one: lock_mac (also for a frame that would be allowed otherwise)', () => {
      expect(verdict(eth(BCAST, OTHER, '0800', ipv4('198.18.0.1', '198.18.0.2', 1, '0800')))).toBe('lock_mac');
      expect(verdict(eth(BCAST, OTHER, '0806', arp(1, OTHER, '198.18.0.1', '198.18.0.2')))).toBe('lock_mac');
      expect(verdict(eth(BCAST, VM, '0800', ipv4('198.18.0.1', '198.18.0.2', 1, '0800')))).toBe('pass');
    });

    it('IPv4: listed address and prefix pass, anything else is lock_ipv4', () => {
      expect(verdict(eth(BCAST, VM, '0800', ipv4('198.18.5.77', '198.18.0.2', 6, '00'.repeat(20))))).toBe('pass');
      expect(verdict(eth(BCAST, VM, '0800', ipv4('198.18.0.2', '198.18.0.1', 1, '0800')))).toBe('lock_ipv4');
      expect(verdict(eth(BCAST, VM, '0800', ipv4('198.18.6.1', '198.18.0.1', 1, '0800')))).toBe('lock_ipv4');
      // not even an IPv4 header
      expect(verdict(eth(BCAST, VM, '0800', '6000'))).toBe('lock_ipv4');
    });

    it('IPv4 from 0.0.0.0: only a DHCP client (UDP 68 -> 67)', () => {
      expect(verdict(eth(BCAST, VM, '0800', ipv4('0.0.0.0', '255.255.255.255', 17, udp(68, 67))))).toBe('pass');
      expect(verdict(eth(BCAST, VM, '0800', ipv4('0.0.0.0', '255.255.255.255', 17, udp(67, 68))))).toBe('lock_ipv4');
      expect(verdict(eth(BCAST, VM, '0800', ipv4('0.0.0.0', '255.255.255.255', 17, udp(68, 53))))).toBe('lock_ipv4');
      expect(verdict(eth(BCAST, VM, '0800', ipv4('0.0.0.0', '255.255.255.255', 1, '0800')))).toBe('lock_ipv4');
      // a later fragment has no UDP header to look at
      expect(verdict(eth(BCAST, VM, '0800', ipv4('0.0.0.0', '255.255.255.255', 17, udp(68, 67), 0x0010)))).toBe('lock_ipv4');
    });

    it('ARP: sender MAC and sender IP checked; a probe from 0.0.0.0 passes', () => {
      expect(verdict(eth(BCAST, VM, '0806', arp(1, VM, '198.18.0.1', '198.18.0.2')))).toBe('pass');
      expect(verdict(eth(BCAST, VM, '0806', arp(2, VM, '198.18.5.9', '198.18.0.2')))).toBe('pass');
      expect(verdict(eth(BCAST, VM, '0806', arp(1, VM, '0.0.0.0', '198.18.0.1')))).toBe('pass');
      expect(verdict(eth(BCAST, VM, '0806', arp(2, VM, '198.18.0.2', '198.18.0.3')))).toBe('lock_arp');
      expect(verdict(eth(BCAST, VM, '0806', arp(2, OTHER, '198.18.0.1', '198.18.0.3')))).toBe('lock_arp');
      // not Ethernet/IPv4 ARP
      expect(verdict(eth(BCAST, VM, '0806', '0006' + arp(1, VM, '198.18.0.1', '198.18.0.2').slice(4)))).toBe('lock_arp');
    });

    it('IPv6: listed address, prefix, listed fe80:: and the EUI-64 link-local pass; others lock_ipv6', () => {
      const echo = icmp6(128, '00010001');
      expect(verdict(eth(BCAST, VM, '86dd', ipv6('2001:db8::1', '2001:db8::2', 58, echo)))).toBe('pass');
      expect(verdict(eth(BCAST, VM, '86dd', ipv6('2001:db8:5::abcd', '2001:db8::2', 58, echo)))).toBe('pass');
      expect(verdict(eth(BCAST, VM, '86dd', ipv6('fe80::1234', 'ff02::1', 58, echo)))).toBe('pass');
      expect(LL).toBe('fe80:0:0:0:216:3eff:fe00:100');
      expect(verdict(eth(BCAST, VM, '86dd', ipv6(LL, 'ff02::1', 58, echo)))).toBe('pass');
      expect(verdict(eth(BCAST, VM, '86dd', ipv6('2001:db8::2', '2001:db8::1', 58, echo)))).toBe('lock_ipv6');
      expect(verdict(eth(BCAST, VM, '86dd', ipv6('fe80::99', 'ff02::1', 58, echo)))).toBe('lock_ipv6');
      expect(verdict(eth(BCAST, VM, '86dd', '4500' + '00'.repeat(40)))).toBe('lock_ipv6');
    });

    it('IPv6 from ::: only DAD, a neighbour solicitation for an allowed target', () => {
      expect(verdict(eth(BCAST, VM, '86dd', ipv6('::', 'ff02::1:ff00:1', 58, ns('2001:db8::1'))))).toBe('pass');
      expect(verdict(eth(BCAST, VM, '86dd', ipv6('::', 'ff02::1:ff00:100', 58, ns(LL))))).toBe('pass');
      // answering/blocking another VM's DAD
      expect(verdict(eth(BCAST, VM, '86dd', ipv6('::', 'ff02::1:ff00:2', 58, ns('2001:db8::2'))))).toBe('lock_ipv6');
      expect(verdict(eth(BCAST, VM, '86dd', ipv6('::', 'ff02::1', 58, na('2001:db8::1'))))).toBe('lock_ipv6');
      expect(verdict(eth(BCAST, VM, '86dd', ipv6('::', 'ff02::1:2', 17, udp(546, 547))))).toBe('lock_ipv6');
    });

    it('NDP: advertisements only for allowed targets, link-layer options only with the locked MAC (lock_nd)', () => {
      expect(verdict(eth(BCAST, VM, '86dd', ipv6('2001:db8::1', 'ff02::1', 58, na('2001:db8::1', llOpt(2, VM)))))).toBe('pass');
      expect(verdict(eth(BCAST, VM, '86dd', ipv6('2001:db8::1', 'ff02::1', 58, na('2001:db8::2', llOpt(2, VM)))))).toBe('lock_nd');
      expect(verdict(eth(BCAST, VM, '86dd', ipv6('2001:db8::1', 'ff02::1', 58, na('2001:db8::1', llOpt(2, OTHER)))))).toBe('lock_nd');
      expect(verdict(eth(BCAST, VM, '86dd', ipv6('2001:db8::1', 'ff02::1:ff00:2', 58, ns('2001:db8::2', llOpt(1, VM)))))).toBe('pass');
      expect(verdict(eth(BCAST, VM, '86dd', ipv6('2001:db8::1', 'ff02::1:ff00:2', 58, ns('2001:db8::2', llOpt(1, OTHER)))))).toBe('lock_nd');
      // an option of length 0 is malformed
      expect(verdict(eth(BCAST, VM, '86dd', ipv6('2001:db8::1', 'ff02::1:ff00:2', 58, ns('2001:db8::2', '0100' + mac(VM)))))).toBe('lock_nd');
      // an NA behind a Hop-by-Hop header is still seen
      expect(verdict(eth(BCAST, VM, '86dd', ipv6('2001:db8::1', 'ff02::1', 0, opts8(58) + na('2001:db8::2'))))).toBe('lock_nd');
    });

    it('other ethertypes: lock_other unless allow_ethertypes lists them', () => {
      expect(verdict(eth(BCAST, VM, '88cc', '0000'))).toBe('lock_other');
      secure({ ...LOCK, allow_ethertypes: ['0x88cc', 0x88b5] });
      expect(verdict(eth(BCAST, VM, '88cc', '0000'))).toBe('pass');
      expect(verdict(eth(BCAST, VM, '88b5', '0000'))).toBe('pass');
      expect(verdict(eth(BCAST, VM, '88b6', '0000'))).toBe('lock_other');
    });

    it('behind 802.1ad and stacked tags the lock judges the inner packet (issue 20)', () => {
      const foreign4 = ipv4('198.18.0.9', '198.18.0.2', 1, '0800');
      const own4 = ipv4('198.18.0.1', '198.18.0.2', 1, '0800');
      // 88a8 VID 0, 88a8 VID 10, 8100 VID 0 + 88a8 VID 0, 9100: an address not locked is lock_ipv4 in every form
      for (const t of ['88a80000', '88a8000a', '8100000088a80000', '91000000', '88a800008100000a']) {
        expect(verdict(eth(BCAST, VM, t.slice(0, 4), t.slice(4) + '0800' + foreign4)), t).toBe('lock_ipv4');
        expect(verdict(eth(BCAST, VM, t.slice(0, 4), t.slice(4) + '0800' + own4)), t).toBe('pass');
      }
      expect(verdict(eth(BCAST, VM, '88a8', '0000' + '0806' + arp(2, VM, '198.18.0.254', '198.18.0.2')))).toBe('lock_arp');
      expect(verdict(eth(BCAST, VM, '88a8', '0000' + '0806' + arp(2, OTHER, '198.18.0.1', '198.18.0.2')))).toBe('lock_arp');
      expect(verdict(eth(BCAST, VM, '88a8', '0000' + '86dd' + ipv6('2001:db8::2', 'ff02::1', 17, udp(9, 9))))).toBe('lock_ipv6');
      expect(verdict(eth(BCAST, VM, '88a8', '0000' + '86dd' + ipv6('2001:db8::1', 'ff02::1', 58, na('2001:db8::2'))))).toBe('lock_nd');
      expect(verdict(eth(BCAST, VM, '88a8', '000a0800' + own4))).toBe('pass');
      // an ethertype behind a tag needs allow_ethertypes like an untagged one; a TPID listed there never matches
      expect(verdict(eth(BCAST, VM, '88a8', '0000' + '88cc' + '0000'))).toBe('lock_other');
      secure({ ...LOCK, allow_ethertypes: ['0x88a8', '0x8100'] });
      expect(verdict(eth(BCAST, VM, '88a8', '0000' + '88cc' + '0000'))).toBe('lock_other');
      expect(verdict(eth(BCAST, VM, '88a8', '0000' + '0800' + foreign4))).toBe('lock_ipv4');
    });

    it(`more than ${SEC_MAX_TAGS} tags, or a tag cut by the frame's end: lock_other`, () => {
      const own4 = ipv4('198.18.0.1', '198.18.0.2', 1, '0800');
      const tags = (n: number): string => '88a80000'.repeat(n);
      expect(verdict(eth(BCAST, VM, '88a8', tags(SEC_MAX_TAGS).slice(4) + '0800' + own4))).toBe('pass');
      expect(verdict(eth(BCAST, VM, '88a8', tags(SEC_MAX_TAGS + 1).slice(4) + '0800' + own4))).toBe('lock_other');
      // a 21-byte frame: an 802.1ad tag, then a TPID and half a TCI (eth() pads to 60: the bytes by hand)
      expect(verdict(mac(BCAST) + mac(VM) + '88a80000' + '8100' + '00')).toBe('lock_other');
    });

    it('a priority-tagged frame is checked behind its tag', () => {
      expect(verdict(eth(BCAST, VM, '8100', '0000' + '0800' + ipv4('198.18.0.1', '198.18.0.2', 1, '0800')))).toBe('pass');
      expect(verdict(eth(BCAST, VM, '8100', '0000' + '0800' + ipv4('198.18.0.9', '198.18.0.2', 1, '0800')))).toBe('lock_ipv4');
    });
  });

  it('a locked port without ipv4 / ipv6 lists sends neither (and no ARP, no DHCP)', () => {
    secure({ mac: VM });
    expect(verdict(eth(BCAST, VM, '0800', ipv4('198.18.0.1', '198.18.0.2', 1, '0800')))).toBe('lock_ipv4');
    expect(verdict(eth(BCAST, VM, '0800', ipv4('0.0.0.0', '255.255.255.255', 17, udp(68, 67))))).toBe('lock_ipv4');
    expect(verdict(eth(BCAST, VM, '0806', arp(1, VM, '0.0.0.0', '198.18.0.1')))).toBe('lock_arp');
    expect(verdict(eth(BCAST, VM, '86dd', ipv6(LL, 'ff02::1', 58, icmp6(128, '00010001'))))).toBe('lock_ipv6');
    expect(verdict(eth(BCAST, VM, '86dd', ipv6('::', 'ff02::1:ff00:100', 58, ns(LL))))).toBe('lock_ipv6');
  });

  it('lock: disabled drops every frame (lock_disabled)', () => {
    secure('disabled');
    expect(verdict(eth(BCAST, VM, '0800', ipv4('198.18.0.1', '198.18.0.2', 1, '0800')))).toBe('lock_disabled');
    expect(verdict(eth(BCAST, OTHER, '0806', arp(1, OTHER, '198.18.0.1', '198.18.0.2')))).toBe('lock_disabled');
    expect(verdict(eth(BCAST, VM, '88cc', ''))).toBe('lock_disabled');
    expect(br.fdb.size).toBe(0);
  });

  describe('ra_guard', () => {
    beforeEach(() => secure(undefined, { raGuard: true, dhcpGuard: false }));
    const S = 'fe80::1';

    it('drops router advertisements and redirects, passes other ICMPv6', () => {
      expect(verdict(eth(BCAST, OTHER, '86dd', ipv6(S, 'ff02::1', 58, ra())))).toBe('ra_guard');
      expect(verdict(eth(BCAST, OTHER, '86dd', ipv6(S, 'fe80::2', 58, icmp6(137, '00000000' + v6('2001:db8::9') + v6('2001:db8::9')))))).toBe('ra_guard');
      expect(verdict(eth(BCAST, OTHER, '86dd', ipv6(S, 'ff02::2', 58, icmp6(133, '00000000'))))).toBe('pass');
      expect(verdict(eth(BCAST, OTHER, '86dd', ipv6(S, 'fe80::2', 58, icmp6(128, '00010001'))))).toBe('pass');
    });

    it('finds an RA behind Hop-by-Hop, Destination Options and Fragment headers (RFC 7113)', () => {
      expect(verdict(eth(BCAST, OTHER, '86dd', ipv6(S, 'ff02::1', 0, opts8(58) + ra())))).toBe('ra_guard');
      expect(verdict(eth(BCAST, OTHER, '86dd', ipv6(S, 'ff02::1', 0, opts8(60) + opts8(58) + ra())))).toBe('ra_guard');
      expect(verdict(eth(BCAST, OTHER, '86dd', ipv6(S, 'ff02::1', 44, fragHdr(58, 0, true) + ra())))).toBe('ra_guard');
      expect(verdict(eth(BCAST, OTHER, '86dd', ipv6(S, 'ff02::1', 0, opts8(44) + fragHdr(58, 0, false) + ra())))).toBe('ra_guard');
    });

    it('drops a first fragment whose header chain stops before the upper-layer header (RFC 7112)', () => {
      // Fragment header, then a Destination Options header that says 58 follows, but the fragment ends there
      expect(verdict(eth(BCAST, OTHER, '86dd', ipv6(S, 'ff02::1', 44, fragHdr(60, 0, true) + opts8(58))))).toBe('ra_guard');
      // a Destination Options header longer than the packet
      expect(verdict(eth(BCAST, OTHER, '86dd', ipv6(S, 'ff02::1', 44, fragHdr(60, 0, true) + '3a05' + '00'.repeat(6))))).toBe('ra_guard');
      // ICMPv6 cut to 2 bytes
      expect(verdict(eth(BCAST, OTHER, '86dd', ipv6(S, 'ff02::1', 44, fragHdr(58, 0, true) + '8600')))).toBe('ra_guard');
      // a payload length beyond the frame
      expect(verdict(eth(BCAST, OTHER, '86dd', '600000000400' + '3aff' + v6(S) + v6('ff02::1') + ra()))).toBe('ra_guard');
      // a later fragment has no upper-layer header: it passes (its first fragment was checked)
      expect(verdict(eth(BCAST, OTHER, '86dd', ipv6(S, 'ff02::1', 44, fragHdr(58, 2, false) + '00'.repeat(16))))).toBe('pass');
    });

    it('finds an RA behind 802.1ad and stacked tags, VID 0 or not (issue 20: Linux strips a VID 0 tag and reads it)', () => {
      const raPkt = '86dd' + ipv6(S, 'ff02::1', 58, ra());
      for (const t of ['88a80000', '88a8000a', '8100000088a80000', '88a8000081000000', '91000000', '88a8000091000000']) {
        expect(verdict(eth('33:33:00:00:00:01', OTHER, t.slice(0, 4), t.slice(4) + raPkt)), t).toBe('ra_guard');
      }
      expect(verdict(eth('33:33:00:00:00:01', OTHER, '8100', '0000' + raPkt))).toBe('ra_guard');
      // other ICMPv6 behind the same tags passes
      expect(verdict(eth(BCAST, OTHER, '88a8', '0000' + '86dd' + ipv6(S, 'fe80::2', 58, icmp6(128, '00010001'))))).toBe('pass');
    });

    it(`drops a frame with more than ${SEC_MAX_TAGS} tags or a cut tag (ra_guard; dhcp_guard when only that guard is on)`, () => {
      const deep = '88a80000'.repeat(SEC_MAX_TAGS + 1).slice(4) + '86dd' + ipv6(S, 'fe80::2', 58, icmp6(128, '00010001'));
      expect(verdict(eth(BCAST, OTHER, '88a8', deep))).toBe('ra_guard');
      expect(verdict(mac(BCAST) + mac(OTHER) + '88a80000' + '8100' + '00')).toBe('ra_guard');
      expect(verdict(eth(BCAST, OTHER, '88a8', '88a80000'.repeat(SEC_MAX_TAGS).slice(4) + '86dd' + ipv6(S, 'fe80::2', 58, icmp6(128, '00010001'))))).toBe('pass');
      secure(undefined, { raGuard: false, dhcpGuard: true });
      expect(verdict(eth(BCAST, OTHER, '88a8', deep))).toBe('dhcp_guard');
    });

    it('is off by default: a router VM keeps working', () => {
      vif.port.security = PortSecurity.build(lockOf(undefined), { raGuard: false, dhcpGuard: false });
      expect(vif.port.security).toBeNull();
      expect(verdict(eth(BCAST, OTHER, '86dd', ipv6(S, 'ff02::1', 58, ra())))).toBe('pass');
    });
  });

  describe('dhcp_guard', () => {
    beforeEach(() => secure(undefined, { raGuard: false, dhcpGuard: true }));

    it('drops DHCPv4 server replies (67 -> 68) and DHCPv6 server messages (547 -> 546), passes clients', () => {
      expect(verdict(eth(BCAST, OTHER, '0800', ipv4('198.18.0.254', '255.255.255.255', 17, udp(67, 68, '0201060000'))))).toBe('dhcp_guard');
      expect(verdict(eth(BCAST, OTHER, '86dd', ipv6('fe80::1', 'fe80::2', 17, udp(547, 546, '02000001'))))).toBe('dhcp_guard');
      expect(verdict(eth(BCAST, OTHER, '86dd', ipv6('fe80::1', 'fe80::2', 0, opts8(17) + udp(547, 546, '02000001'))))).toBe('dhcp_guard');
      expect(verdict(eth(BCAST, OTHER, '0800', ipv4('0.0.0.0', '255.255.255.255', 17, udp(68, 67, '0101060000'))))).toBe('pass');
      expect(verdict(eth(BCAST, OTHER, '86dd', ipv6('fe80::2', 'ff02::1:2', 17, udp(546, 547, '01000001'))))).toBe('pass');
      // RA passes when only the DHCP guard is on
      expect(verdict(eth(BCAST, OTHER, '86dd', ipv6('fe80::1', 'ff02::1', 58, ra())))).toBe('pass');
    });

    it('judges by destination port, as DHCP clients do: a BOOTREPLY to 68 from any port, anything to 546 (issue 20)', () => {
      const reply = '0201060000';
      expect(verdict(eth(BCAST, OTHER, '0800', ipv4('198.18.0.254', '255.255.255.255', 17, udp(6767, 68, reply))))).toBe('dhcp_guard');
      expect(verdict(eth(BCAST, OTHER, '0800', ipv4('198.18.0.254', '198.18.0.7', 17, udp(1, 68, reply))))).toBe('dhcp_guard');
      expect(verdict(eth(BCAST, OTHER, '86dd', ipv6('fe80::1', 'fe80::2', 17, udp(5470, 546, '02000001'))))).toBe('dhcp_guard');
      expect(verdict(eth(BCAST, OTHER, '86dd', ipv6('fe80::1', 'fe80::2', 60, opts8(17) + udp(5470, 546, '07000001'))))).toBe('dhcp_guard');
      // a BOOTREQUEST to 68, and a BOOTREPLY to another port, are no server answer to a client
      expect(verdict(eth(BCAST, OTHER, '0800', ipv4('198.18.0.254', '255.255.255.255', 17, udp(67, 68, '0101060000'))))).toBe('pass');
      expect(verdict(eth(BCAST, OTHER, '0800', ipv4('198.18.0.254', '255.255.255.255', 17, udp(67, 6767, reply))))).toBe('pass');
      expect(verdict(eth(BCAST, OTHER, '86dd', ipv6('fe80::1', 'fe80::2', 17, udp(546, 5470, '02000001'))))).toBe('pass');
      // the op byte is read inside the IPv4 packet, not from the frame's padding
      const empty = eth(BCAST, OTHER, '0800', ipv4('198.18.0.254', '255.255.255.255', 17, udp(67, 68, '')));
      expect(verdict(empty.slice(0, 2 * (14 + 28)) + '02'.repeat(18))).toBe('pass');
      // a first fragment that ends before the op byte hides it in the next fragment: dropped; a later fragment passes
      expect(verdict(eth(BCAST, OTHER, '0800', ipv4('198.18.0.254', '255.255.255.255', 17, udp(67, 68, ''), 0x2000)))).toBe('dhcp_guard');
      expect(verdict(eth(BCAST, OTHER, '0800', ipv4('198.18.0.254', '255.255.255.255', 17, '02010600' + '00'.repeat(12), 0x0001)))).toBe('pass');
    });

    it('judges DHCP behind 802.1ad and stacked tags (issue 20)', () => {
      const v4reply = '0800' + ipv4('198.18.0.254', '255.255.255.255', 17, udp(67, 68, '0201060000'));
      const v6adv = '86dd' + ipv6('fe80::1', 'fe80::2', 17, udp(547, 546, '02000001'));
      for (const t of ['88a80000', '8100000088a80000', '91000000', '8100000a']) {
        expect(verdict(eth(BCAST, OTHER, t.slice(0, 4), t.slice(4) + v4reply)), t).toBe('dhcp_guard');
        expect(verdict(eth(BCAST, OTHER, t.slice(0, 4), t.slice(4) + v6adv)), t).toBe('dhcp_guard');
      }
      expect(verdict(eth(BCAST, OTHER, '88a8', '0000' + '0800' + ipv4('0.0.0.0', '255.255.255.255', 17, udp(68, 67, '0101060000'))))).toBe('pass');
    });

    it('a truncated chain is dropped as dhcp_guard when the RA guard is off', () => {
      expect(verdict(eth(BCAST, OTHER, '86dd', ipv6('fe80::1', 'fe80::2', 44, fragHdr(60, 0, true) + opts8(17))))).toBe('dhcp_guard');
    });
  });

  it('guards work on a locked port too, after the lock passed the frame', () => {
    secure(LOCK, { raGuard: true, dhcpGuard: true });
    expect(verdict(eth(BCAST, VM, '86dd', ipv6('fe80::1234', 'ff02::1', 58, ra())))).toBe('ra_guard');
    expect(verdict(eth(BCAST, VM, '0800', ipv4('198.18.0.1', '255.255.255.255', 17, udp(67, 68, '0201060000'))))).toBe('dhcp_guard');
    // behind an 802.1ad tag: the lock first, then the guards
    expect(verdict(eth(BCAST, VM, '88a8', '0000' + '86dd' + ipv6('fe80::1234', 'ff02::1', 58, ra())))).toBe('ra_guard');
    expect(verdict(eth(BCAST, VM, '88a8', '0000' + '0800' + ipv4('198.18.0.1', '255.255.255.255', 17, udp(6767, 68, '0201060000'))))).toBe('dhcp_guard');
    expect(verdict(eth(BCAST, VM, '86dd', ipv6('fe80::99', 'ff02::1', 58, ra())))).toBe('lock_ipv6');
    expect(verdict(eth(BCAST, VM, '86dd', ipv6('2001:db8::1', 'fe80::2', 17, udp(547, 546, '02000001'))))).toBe('dhcp_guard');
    expect(verdict(eth(BCAST, VM, '86dd', ipv6('2001:db8::1', '2001:db8::2', 17, udp(5000, 5001))))).toBe('pass');
    expect(verdict(eth(BCAST, VM, '86dd', ipv6('2001:db8::1', '2001:db8::2', 6, '00'.repeat(20))))).toBe('pass');
    expect(verdict(eth(BCAST, VM, '0800', ipv4('198.18.0.1', '198.18.0.2', 17, udp(5000, 5001))))).toBe('pass');
    expect(verdict(eth(BCAST, VM, '0800', ipv4('198.18.0.1', '198.18.0.2', 6, '00'.repeat(20))))).toBe('pass');
    // an RA behind a Hop-by-Hop header from an allowed source: not the fast path
    expect(verdict(eth(BCAST, VM, '86dd', ipv6('2001:db8::1', 'ff02::1', 0, opts8(58) + ra())))).toBe('ra_guard');
  });

  it('stats drops show every port-security counter', () => {
    for (const k of [...SECURITY_DROP_NAMES, 'vlan_reserved', 'stacked_tag']) expect(vif.port.drops()).toHaveProperty(k, 0);
  });

  describe('the locked MAC as a static FDB entry', () => {
    it('is installed in the access VLAN, cannot be taken over by another port, and follows lock clear and vlan set', () => {
      const locks = new PortLocks(br);
      br.setPortVlan(vif.port, { mode: 'access', vlan: 10 });
      br.setPortVlan(out.port, { mode: 'trunk', vlans: [10, 20], native: null });
      const m = parseMac(VM)!;
      expect(locks.apply(vif.port, lockOf(LOCK), { raGuard: false, dhcpGuard: false }, 0)).toBe(true);
      expect(br.fdb.lookup(10, m)).toBe(vif.port.id);
      // the uplink sends with the VM's MAC in VLAN 10: the entry stays
      batch.reset().add(eth(BCAST, VM, '8100', '000a0800' + ipv4('198.18.0.1', '198.18.0.2', 1, '0800')));
      br.receive(out.port, batch.slab, batch.desc, batch.count);
      expect(br.fdb.lookup(10, m)).toBe(vif.port.id);
      expect(locks.show(vif.port)).toMatchObject({ port: 'vif1.0', mode: 'locked', mac: VM, ipv4: LOCK.ipv4, ipv6: LOCK.ipv6 });
      // vlan set moves it
      br.setPortVlan(vif.port, { mode: 'access', vlan: 20 });
      locks.reinstall(vif.port, 0);
      expect(br.fdb.lookup(10, m)).toBe(-1);
      expect(br.fdb.lookup(20, m)).toBe(vif.port.id);
      locks.apply(vif.port, lockOf(undefined), { raGuard: true, dhcpGuard: false }, 0);
      expect(br.fdb.lookup(20, m)).toBe(-1);
      expect(vif.port.security).not.toBeNull();
      expect(locks.show(vif.port)).toMatchObject({ mode: 'unlocked', ra_guard: true, dhcp_guard: false });
    });

    it('native VLAN on a trunk, VLAN 0 on a default port', () => {
      const locks = new PortLocks(br);
      const m = parseMac(VM)!;
      locks.apply(vif.port, lockOf(LOCK), { raGuard: false, dhcpGuard: false }, 0);
      expect(br.fdb.lookup(0, m)).toBe(vif.port.id);
      br.setPortVlan(vif.port, { mode: 'trunk', vlans: [10, 30], native: 30 });
      locks.reinstall(vif.port, 0);
      expect(br.fdb.lookup(30, m)).toBe(vif.port.id);
      expect(br.fdb.lookup(10, m)).toBe(-1);
    });
  });
});

describe('lockSpecFrom', () => {
  it('accepts addresses, prefixes, ethertypes; absent = unlocked', () => {
    expect(lockOf(undefined)).toEqual({ mode: 'unlocked' });
    expect(lockOf('disabled')).toEqual({ mode: 'disabled' });
    expect(lockOf({ mac: VM, ipv4: ['198.18.0.0/15'], ipv6: ['2001:db8::/32'], allow_ethertypes: ['0x88cc'] })).toEqual({
      mode: 'locked', mac: parseMac(VM), ipv4: ['198.18.0.0/15'], ipv6: ['2001:db8::/32'], allowEthertypes: [0x88cc],
    });
  });

  it('names the key of every problem', () => {
    const r = lockSpecFrom({ mac: '01:00:5e:00:00:01', ipv4: ['198.18.0.1/33', 'x'], ipv6: ['2001:db8::1/129'], allow_ethertypes: ['0x05'], foo: 1 });
    expect('problems' in r && r.problems.map(([k]) => k).sort()).toEqual(['allow_ethertypes[0]', 'foo', 'ipv4[0]', 'ipv4[1]', 'ipv6[0]', 'mac']);
    expect(lockSpecFrom({ ipv4: [] })).toEqual({ problems: [['mac', expect.stringMatching(/required/)]] });
    expect(lockSpecFrom('locked')).toMatchObject({ problems: [['', expect.stringMatching(/disabled/)]] });
  });

  it('parses IPv6 forms', () => {
    expect(v6('::')).toBe('00'.repeat(16));
    expect(v6('2001:db8::1')).toBe('20010db8' + '00'.repeat(11) + '01');
    expect(v6('::ffff:198.18.0.1')).toBe('00'.repeat(10) + 'ffff' + 'c6120001');
    expect(v6('fe80::216:3eff:fe00:100')).toBe('fe80' + '00'.repeat(6) + '0216' + '3eff' + 'fe00' + '0100');
    expect(parseIpv6Prefix('2001:db8::1%eth0')).toBeNull();
  });
});

describe('the fast path agrees with the full check', () => {
  it('on random frames from locked ports with and without guards', () => {
    let seed = 0x5eed;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const pick = <T>(xs: readonly T[]): T => xs[rnd(xs.length)];
    const hdr = new EthernetHeader();
    const srcs4 = ['198.18.0.1', '198.18.5.7', '198.18.0.2', '0.0.0.0'];
    const srcs6 = ['2001:db8::1', '2001:db8:5::9', 'fe80::1234', LL, '2001:db8::2', '::'];
    const l4 = (): [number, string] => pick([
      [17, udp(pick([67, 68, 546, 547, 5000]), pick([67, 68, 546, 547, 5001]))],
      [6, '00'.repeat(20)],
      [58, pick([icmp6(128, '00010001'), icmp6(pick([130, 133, 134, 135, 136, 137, 143]), '00'.repeat(20)), ra(), na('2001:db8::2')])],
    ] as [number, string][]);
    let compared = 0;
    for (let i = 0; i < 4000; i++) {
      const sec = PortSecurity.build(lockOf(pick([LOCK, { mac: VM, ipv4: ['198.18.0.1'], ipv6: ['2001:db8::1'] }, { mac: VM }])), {
        raGuard: rnd(2) === 1, dhcpGuard: rnd(2) === 1,
      })!;
      const src = rnd(8) === 0 ? OTHER : VM;
      const tag = pick(['', '', '81000000', '8100000a', '88a8000a', '88a80000', '8100000088a80000', '91000000']);
      let body: string;
      if (rnd(2) === 0) {
        const [proto, pl] = l4();
        body = '0800' + ipv4(pick(srcs4), '198.18.0.9', proto === 58 ? 1 : proto, pl, pick([0, 0, 0x2000, 0x0010]));
      } else {
        const [proto, pl] = l4();
        body = '86dd' + (rnd(4) === 0 ? ipv6(pick(srcs6), 'ff02::1', 0, opts8(proto) + pl) : ipv6(pick(srcs6), 'ff02::1', proto, pl));
      }
      let frame = mac(BCAST) + mac(src) + tag + body;
      if (rnd(6) === 0) frame = frame.slice(0, 2 * (14 + rnd(40))); // truncated
      const bytes = Buffer.from(frame.length < 120 ? frame.padEnd(120, '0') : frame, 'hex');
      if (!parseEthernet(bytes, 0, bytes.length, hdr)) continue;
      expect(checkSecurity(sec, bytes, 0, bytes.length, hdr), frame).toBe(checkFull(sec, bytes, 0, bytes.length, hdr));
      compared++;
    }
    expect(compared).toBeGreaterThan(3000);
  });
});
