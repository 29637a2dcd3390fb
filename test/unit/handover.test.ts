// Handover payload checks (src/handover/protocol.ts), the host port's config keys and its derived MAC: pure functions,
// no addon, no root.

import { describe, expect, it } from 'vitest';
import { encodePayload, HANDOVER_PROTOCOL, parsePayload, type HandoverPayload } from '../../src/handover/protocol.js';
import { parseConfig } from '../../src/config/config.js';
import { derivedHostMac } from '../../src/hostport/mac.js';
import { parseMac } from '../../src/frame/mac.js';
import { configIssues } from '../support/config-issues.js';

const sample: HandoverPayload = {
  protocol: HANDOVER_PROTOCOL,
  from: { version: '0.1.0', pid: 42 },
  fds: [
    { kind: 'tap', name: 'vif1.0', ifindex: 4 },
    { kind: 'packet', name: 'peth0', ifindex: 2 },
    { kind: 'control', name: '/run/tapbridge/tapbridge.sock', ifindex: 0 },
    { kind: 'statelock', name: '', ifindex: 0 },
  ],
  state: '{"version":1}',
};

const bytes = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v));
const json = (): Record<string, any> => JSON.parse(new TextDecoder().decode(encodePayload(sample)));

describe('handover payload', () => {
  it('round-trips through encodePayload and parsePayload', () => {
    expect(parsePayload(encodePayload(sample), 4)).toEqual(sample);
  });

  it('refuses a payload whose fd list does not match the fds that arrived', () => {
    expect(() => parsePayload(encodePayload(sample), 3)).toThrow(/fds: describes 4 fds, 3 arrived/);
  });

  it('names the field that is wrong', () => {
    const bad = json();
    bad.fds[0].name = '../../etc';
    expect(() => parsePayload(bytes(bad), 4)).toThrow(/fds\[0\]\.name: must be an interface name/);
    const bad2 = json();
    bad2.fds[1].kind = 'socket';
    expect(() => parsePayload(bytes(bad2), 4)).toThrow(/fds\[1\]\.kind: must be one of/);
    const bad3 = json();
    bad3.fds[2].ifindex = -1;
    expect(() => parsePayload(bytes(bad3), 4)).toThrow(/fds\[2\]\.ifindex/);
    const bad4 = json();
    bad4.state = { version: 1 };
    expect(() => parsePayload(bytes(bad4), 4)).toThrow(/state: must be the state document as JSON text/);
    const bad5 = json();
    delete bad5.from.pid;
    expect(() => parsePayload(bytes(bad5), 4)).toThrow(/from\.pid/);
  });

  it('refuses text that is not JSON or not UTF-8', () => {
    expect(() => parsePayload(new TextEncoder().encode('{"protocol":'), 0)).toThrow(/\(json\)/);
    expect(() => parsePayload(new Uint8Array([0xff, 0xfe]), 0)).toThrow(/\(json\)/);
  });
});

describe('kind: host', () => {
  it('reads mac: uplink and a given MAC; mac only on host ports', () => {
    const cfg = parseConfig(`
bridges:
  - name: xenbr0
    uplink: { interface: peth0 }
    ports: [ { name: xenbr0, kind: host, mac: uplink }, { name: h2, kind: host, mac: "02:00:00:00:00:0a" }, { name: h3, kind: host } ]
`);
    expect(cfg.bridges[0].ports.map((p) => [p.kind, p.mac])).toEqual([['host', 'uplink'], ['host', parseMac('02:00:00:00:00:0a')], ['host', null]]);
    expect(configIssues('bridges: [ { name: b, ports: [ { name: a, mac: "02:00:00:00:00:01" } ] } ]'))
      .toEqual(['bridges[0].ports[0].mac: applies only to kind host (the host\'s own port)']);
    expect(configIssues('bridges: [ { name: b, ports: [ { name: a, kind: host, mac: uplink } ] } ]'))
      .toEqual(['bridges[0].ports[0].mac: "uplink" needs an uplink on this bridge']);
    expect(configIssues('bridges: [ { name: b, ports: [ { name: a, kind: host, mac: "01:00:00:00:00:01" } ] } ]'))
      .toEqual(['bridges[0].ports[0].mac: "01:00:00:00:00:01" is a multicast or zero address']);
  });

  it('derives a stable, locally administered unicast MAC per bridge and machine', () => {
    const id = '3d1219c7c4c5404aaa1f6d2a48adfda4';
    const a = derivedHostMac('xenbr0', id);
    expect(derivedHostMac('xenbr0', id)).toBe(a);
    expect(derivedHostMac('xenbr1', id)).not.toBe(a);
    expect(derivedHostMac('xenbr0', '0'.repeat(32))).not.toBe(a);
    expect(parseInt(a.slice(0, 2), 16) & 0x03).toBe(0x02);
  });
});
