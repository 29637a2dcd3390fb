// The `packet_mmap` key (PACKET_MMAP rings on AF_PACKET sockets): its defaults, the boolean shorthand, the mapping,
// and the errors that name what was wrong (a slot size that is no multiple of 16, a ring above 511 blocks of 64 KiB).
import { describe, expect, it } from 'vitest';
import { DEFAULT_PACKET_MMAP, parseConfig } from '../../src/config/config.js';
import { configIssues } from '../support/config-issues.js';

const doc = (mm: string): string => `${mm}\nbridges:\n  - name: br0\n    uplink: { interface: peth0 }\n`;

describe('packet_mmap config', () => {
  it('defaults to an rx ring of 4096 slots of 2048 bytes, no tx ring, no qdisc bypass', () => {
    expect(parseConfig(doc('')).packetMmap).toEqual({ enabled: true, rxFrames: 4096, txFrames: 0, frameBytes: 2048, qdiscBypass: false });
    expect(DEFAULT_PACKET_MMAP.enabled).toBe(true);
  });

  it('false turns the rings off and keeps the default sizes', () => {
    expect(parseConfig(doc('packet_mmap: false')).packetMmap).toEqual({ ...DEFAULT_PACKET_MMAP, enabled: false });
  });

  it('a mapping sets each key', () => {
    const c = parseConfig(doc('packet_mmap: { rx_frames: 4096, tx_frames: 256, frame_bytes: 4096, qdisc_bypass: true }'));
    expect(c.packetMmap).toEqual({ enabled: true, rxFrames: 4096, txFrames: 256, frameBytes: 4096, qdiscBypass: true });
  });

  it('refuses a slot size that is not a multiple of 16, a ring above 511 blocks and unknown keys', () => {
    expect(configIssues(doc('packet_mmap: { frame_bytes: 2056 }'))).toEqual(['packet_mmap.frame_bytes: must be a multiple of 16, got 2056']);
    expect(configIssues(doc('packet_mmap: { rx_frames: 20000 }'))).toEqual([
      'packet_mmap.rx_frames: 20000 slots of 2048 bytes need 625 blocks of 64 KiB; at most 511 (16352 slots of this size)',
    ]);
    expect(configIssues(doc('packet_mmap: { rx_slots: 1 }'))[0]).toMatch(/^packet_mmap\.rx_slots: unknown key/);
    expect(configIssues(doc('packet_mmap: yes'))[0]).toMatch(/^packet_mmap: must be a mapping/);
  });
});

describe('packet_mmap on reload', () => {
  it('a changed packet_mmap is one change that hands the new geometry to the addon; an unchanged one is none', async () => {
    const { diffConfig } = await import('../../src/state/reload.js');
    const o = parseConfig(doc(''));
    expect(diffConfig(o, parseConfig(doc('packet_mmap: true'))).filter((c) => c.line.includes('packet_mmap'))).toEqual([]);
    const n = parseConfig(doc('packet_mmap: { rx_frames: 1024 }'));
    const changes = diffConfig(o, n).filter((c) => c.line.includes('packet_mmap'));
    expect(changes).toHaveLength(1);
    expect(changes[0].action).toEqual({ do: 'packetMmap', cfg: { ...DEFAULT_PACKET_MMAP, rxFrames: 1024 } });
    expect(changes[0].line).toMatch(/AF_PACKET sockets opened from now on/);
  });
});
