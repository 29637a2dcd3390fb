// The handover payload's vhost-user part (src/handover/protocol.ts): fds of kind vhost-user with their role in ifindex,
// and the per-port state object, checked like every other field (it crossed a process boundary).
import { describe, expect, it } from 'vitest';
import { encodePayload, HandoverPayloadError, parsePayload } from '../../src/handover/protocol.js';

const base = { protocol: 1, from: { version: 'x', pid: 1 }, state: '{}' };

describe('handover payload: vhost-user ports', () => {
  it('keeps vhost-user fds with their roles and the state per port', () => {
    const p = parsePayload(encodePayload({
      ...base,
      fds: [{ kind: 'vhost-user', name: 'vif3.0', ifindex: 0 }, { kind: 'vhost-user', name: 'vif3.0', ifindex: 17 }],
      vhost: { 'vif3.0': { features: '150008000' } },
    }), 2);
    expect(p.fds.map((f) => [f.kind, f.name, f.ifindex])).toEqual([['vhost-user', 'vif3.0', 0], ['vhost-user', 'vif3.0', 17]]);
    expect(p.vhost).toEqual({ 'vif3.0': { features: '150008000' } });
  });

  it('a payload without vhost stays as it was', () => {
    expect(parsePayload(encodePayload({ ...base, fds: [] }), 0).vhost).toBeUndefined();
  });

  it('names what is wrong', () => {
    const bad = (doc: unknown, n = 0): string => {
      try {
        parsePayload(new TextEncoder().encode(JSON.stringify(doc)), n);
      } catch (err) {
        expect(err).toBeInstanceOf(HandoverPayloadError);
        return (err as Error).message;
      }
      return 'accepted';
    };
    expect(bad({ ...base, fds: [], vhost: [] })).toBe('handover payload vhost: must be an object');
    expect(bad({ ...base, fds: [], vhost: { 'a/b': {} } })).toBe('handover payload vhost: "a/b" is not a port name');
    expect(bad({ ...base, fds: [], vhost: { v: 1 } })).toBe('handover payload vhost.v: must be an object');
    expect(bad({ ...base, fds: [{ kind: 'vhost-user', name: '', ifindex: 0 }] }, 1)).toMatch(/^handover payload fds\[0\]\.name: must be an interface name/);
  });
});
