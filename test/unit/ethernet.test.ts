import { describe, expect, it } from 'vitest';
import { EthernetHeader, isLinkLocalDst, parseEthernet } from '../../src/frame/ethernet.js';
import { formatMac, parseMac, readMac, writeMac } from '../../src/frame/mac.js';

function frame(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex.replace(/\s+/g, ''), 'hex'));
}

describe('MAC helpers', () => {
  it('round-trips strings and numbers', () => {
    for (const s of ['00:00:00:00:00:01', 'ff:ff:ff:ff:ff:ff', '00:16:3e:12:34:56', '52:54:00:ab:cd:ef']) {
      expect(formatMac(parseMac(s)!)).toBe(s);
    }
    expect(parseMac('52-54-00-AB-CD-EF')).toBe(parseMac('52:54:00:ab:cd:ef'));
    expect(parseMac('52:54:00:ab:cd')).toBeNull();
    expect(parseMac('zz:54:00:ab:cd:ef')).toBeNull();
  });

  it('reads and writes MACs in frames', () => {
    const b = new Uint8Array(8);
    writeMac(b, 1, parseMac('00:16:3e:12:34:56')!);
    expect(formatMac(readMac(b, 1))).toBe('00:16:3e:12:34:56');
  });
});

describe('parseEthernet', () => {
  const h = new EthernetHeader();

  it('parses an untagged IPv4 frame', () => {
    const f = frame('ffffffffffff 00163e000001 0800 4500');
    expect(parseEthernet(f, 0, f.length, h)).toBe(true);
    expect(h.dstGroup).toBe(true);
    expect(h.srcGroup).toBe(false);
    expect(formatMac(h.src)).toBe('00:16:3e:00:00:01');
    expect(h.tpid).toBe(0);
    expect(h.etherType).toBe(0x0800);
    expect(h.payloadOffset).toBe(14);
  });

  it('recognises 802.1Q and 802.1ad tags', () => {
    const q = frame('00163e000002 00163e000001 8100 a064 0806 0001');
    expect(parseEthernet(q, 0, q.length, h)).toBe(true);
    expect(h.tpid).toBe(0x8100);
    expect(h.tci & 0xfff).toBe(100);
    expect(h.tci >> 13).toBe(5);
    expect(h.etherType).toBe(0x0806);
    expect(h.payloadOffset).toBe(18);
    const ad = frame('00163e000002 00163e000001 88a8 0064 8100 000a');
    expect(parseEthernet(ad, 0, ad.length, h)).toBe(true);
    expect(h.tpid).toBe(0x88a8);
    expect(h.etherType).toBe(0x8100);
  });

  it('parses at an offset inside a slab', () => {
    const f = frame('0000000000 00163e000002 00163e000001 86dd');
    expect(parseEthernet(f, 5, 14, h)).toBe(true);
    expect(formatMac(h.dst)).toBe('00:16:3e:00:00:02');
    expect(h.etherType).toBe(0x86dd);
  });

  it('rejects runts and truncated tags', () => {
    const f = frame('00163e000002 00163e000001 08');
    expect(parseEthernet(f, 0, f.length, h)).toBe(false);
    const t = frame('00163e000002 00163e000001 8100 00');
    expect(parseEthernet(t, 0, t.length, h)).toBe(false);
  });

  it('knows the 802.1D reserved range 01:80:c2:00:00:00-0f', () => {
    expect(isLinkLocalDst(parseMac('01:80:c2:00:00:00')!)).toBe(true);
    expect(isLinkLocalDst(parseMac('01:80:c2:00:00:0f')!)).toBe(true);
    expect(isLinkLocalDst(parseMac('01:80:c2:00:00:10')!)).toBe(false);
    expect(isLinkLocalDst(parseMac('01:00:5e:00:00:01')!)).toBe(false);
  });
});
