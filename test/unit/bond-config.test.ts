// Config of an active-backup bond uplink (issue 4): defaults of the Linux bonding driver, and errors that name the key
// path. No root needed; the last test runs the CLI (`check-config`) to see exit code 2.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { diffConfig } from '../../src/state/reload.js';
import { configIssues } from '../support/config-issues.js';

const cli = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

const issues = configIssues;

/** A one-bridge config whose uplink is `uplink` (YAML flow text) and whose ports are `ports`. */
const withUplink = (uplink: string, ports = '[ { name: vif1.0 } ]'): string => `
bridges:
  - name: xenbr0
    uplink: ${uplink}
    ports: ${ports}
`;

describe('bond config', () => {
  it('reads a bond with the bonding driver defaults', () => {
    const cfg = parseConfig(withUplink('{ bond: { name: bond0, members: [peth0, peth1] } }'));
    const up = cfg.bridges[0].uplink;
    expect(up?.interface).toBeNull();
    expect(up?.bond).toEqual({
      name: 'bond0',
      mode: 'active-backup',
      members: ['peth0', 'peth1'],
      primary: 'peth0',
      primaryReselect: 'always',
      miimonMs: 100,
      updelayMs: 0,
      downdelayMs: 0,
      numGratArp: 1,
      peerNotifDelayMs: 0,
      rebalanceIntervalMs: 10_000,
      lacp: 'active',
      lacpRate: 'slow',
      hash: 'layer2',
      systemPriority: 65535,
      portPriority: 255,
    });
    expect(up?.vlan).toEqual({ mode: 'default' });
  });

  it('reads every bond key and the uplink VLAN keys beside it', () => {
    const cfg = parseConfig(withUplink(`
      bond: { name: bond0, members: [peth0, peth1], primary: peth1, primary_reselect: failure,
              miimon: 50, updelay: 31000, downdelay: 200, num_grat_arp: 3, peer_notif_delay: 100 }
      trunk: [10, 20]`, '[ { name: vif1.0, vlan: 10 } ]'));
    const up = cfg.bridges[0].uplink!;
    expect(up.bond).toMatchObject({
      primary: 'peth1', primaryReselect: 'failure', miimonMs: 50, updelayMs: 31000, downdelayMs: 200, numGratArp: 3, peerNotifDelayMs: 100,
    });
    expect(up.vlan.mode).toBe('trunk');
  });

  it('a static FDB entry may point at the bond by its name', () => {
    const cfg = parseConfig(`
bridges:
  - name: xenbr0
    uplink: { bond: { name: bond0, members: [peth0, peth1] } }
    ports: [ { name: vif1.0 } ]
    fdb: [ { mac: "00:16:3e:00:00:09", port: bond0 } ]
`);
    expect(cfg.bridges[0].fdb[0].port).toBe('bond0');
  });

  it('one member or three members: names bond.members and exits 2 (see the CLI test)', () => {
    expect(issues(withUplink('{ bond: { name: bond0, members: [peth0] } }'))).toEqual([
      "bridges[0].uplink.bond.members: an active-backup bond has exactly two members (as XenServer's bridge mode), got 1",
    ]);
    expect(issues(withUplink('{ bond: { name: bond0, members: [peth0, peth1, peth2] } }'))).toEqual([
      "bridges[0].uplink.bond.members: an active-backup bond has exactly two members (as XenServer's bridge mode), got 3",
    ]);
  });

  it('members missing or not a list, a member that is not a name', () => {
    expect(issues(withUplink('{ bond: { name: bond0 } }'))).toEqual(['bridges[0].uplink.bond.members: is required (two interface names)']);
    expect(issues(withUplink('{ bond: { name: bond0, members: peth0 } }'))[0]).toMatch(/^bridges\[0\]\.uplink\.bond\.members: must be a list/);
    expect(issues(withUplink('{ bond: { name: bond0, members: [peth0, 7] } }'))[0]).toMatch(/^bridges\[0\]\.uplink\.bond\.members\[1\]: must be an interface name/);
  });

  it('primary that is not a member', () => {
    expect(issues(withUplink('{ bond: { name: bond0, members: [peth0, peth1], primary: eth9 } }'))).toEqual([
      'bridges[0].uplink.bond.primary: "eth9" is not one of the members (peth0, peth1)',
    ]);
  });

  it('bad primary_reselect', () => {
    expect(issues(withUplink('{ bond: { name: bond0, members: [peth0, peth1], primary_reselect: sometimes } }'))).toEqual([
      'bridges[0].uplink.bond.primary_reselect: must be always, better or failure, got "sometimes"',
    ]);
  });

  it('bad times and counts name their key', () => {
    const out = issues(withUplink('{ bond: { name: bond0, members: [peth0, peth1], miimon: -1, updelay: "5", downdelay: 1.5, num_grat_arp: 256 } }'));
    expect(out.map((l) => l.split(':')[0])).toEqual([
      'bridges[0].uplink.bond.miimon',
      'bridges[0].uplink.bond.updelay',
      'bridges[0].uplink.bond.downdelay',
      'bridges[0].uplink.bond.num_grat_arp',
    ]);
  });

  it('unknown bond keys; interface and bond together', () => {
    expect(issues(withUplink('{ bond: { name: bond0, members: [peth0, peth1], speed: 10 } }'))[0])
      .toMatch(/^bridges\[0\]\.uplink\.bond\.speed: unknown key/);
    expect(issues(withUplink('{ interface: peth0, bond: { name: bond0, members: [peth1, peth2] } }'))).toEqual([
      'bridges[0].uplink.interface: an uplink is either `interface` or `bond`, not both',
    ]);
  });

  it('a member name duplicated with a port, with the other member or with the bond', () => {
    expect(issues(withUplink('{ bond: { name: bond0, members: [peth0, peth1] } }', '[ { name: peth1, kind: attach } ]'))).toEqual([
      'bridges[0].ports[0].name: interface "peth1" is already used at bridges[0].uplink.bond.members[1]',
    ]);
    expect(issues(withUplink('{ bond: { name: bond0, members: [peth0, peth0] } }'))).toEqual([
      'bridges[0].uplink.bond.members[1]: interface "peth0" is already used at bridges[0].uplink.bond.members[0]',
    ]);
    expect(issues(withUplink('{ bond: { name: peth0, members: [peth0, peth1] } }'))).toEqual([
      'bridges[0].uplink.bond.members[0]: interface "peth0" is already used at bridges[0].uplink.bond.name',
    ]);
  });

  it('a member name used by another bridge is a duplicate too', () => {
    const out = issues(`
bridges:
  - name: a
    uplink: { bond: { name: bond0, members: [peth0, peth1] } }
  - name: b
    uplink: { interface: peth1 }
`);
    expect(out).toEqual(['bridges[1].uplink.interface: interface "peth1" is already used at bridges[0].uplink.bond.members[1]']);
  });

  it('a member name longer than 15 bytes', () => {
    expect(issues(withUplink('{ bond: { name: bond0, members: [peth0, a-very-long-member] } }'))).toEqual([
      'bridges[0].uplink.bond.members[1]: "a-very-long-member" is 18 bytes long; interface names are at most 15 bytes',
    ]);
  });

  it('check-config exits 2 and prints the key path for a bond of three members', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tb-bondcfg-'));
    try {
      const file = join(dir, 'bad.yaml');
      writeFileSync(file, withUplink('{ bond: { name: bond0, members: [peth0, peth1, peth2] } }'));
      const r = await new Promise<{ code: number; out: string }>((resolve) => {
        execFile(process.execPath, [cli, 'check-config', file], { timeout: 20_000 }, (err, stdout, stderr) => {
          resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, out: stdout + stderr });
        });
      });
      expect(r.code).toBe(2);
      expect(r.out).toContain('bridges[0].uplink.bond.members: an active-backup bond has exactly two members');
      const good = join(dir, 'good.yaml');
      writeFileSync(good, withUplink('{ bond: { name: bond0, members: [peth0, peth1] } }'));
      const ok = await new Promise<number>((resolve) => {
        execFile(process.execPath, [cli, 'check-config', good], { timeout: 20_000 }, (err) => resolve(err === null ? 0 : Number(err.code)));
      });
      expect(ok).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('balance-slb and 802.3ad: every key of the mode, two to four members', () => {
    const slb = parseConfig(withUplink('{ bond: { name: bond0, mode: balance-slb, members: [p0, p1, p2, p3], rebalance_interval: 2000, num_grat_arp: 2 } }')).bridges[0].uplink!.bond!;
    expect(slb).toMatchObject({ mode: 'balance-slb', members: ['p0', 'p1', 'p2', 'p3'], rebalanceIntervalMs: 2000, numGratArp: 2 });
    const lacp = parseConfig(withUplink(`{ bond: { name: bond0, mode: 802.3ad, members: [p0, p1, p2], lacp: passive, lacp_rate: fast,
      hash: layer3+4, system_priority: 100, port_priority: 10 } }`)).bridges[0].uplink!.bond!;
    expect(lacp).toMatchObject({ mode: '802.3ad', members: ['p0', 'p1', 'p2'], lacp: 'passive', lacpRate: 'fast', hash: 'layer3+4', systemPriority: 100, portPriority: 10 });
  });

  it('a bad mode, five members, bad LACP values and keys of another mode name their key path', () => {
    expect(issues(withUplink('{ bond: { name: bond0, mode: lacp, members: [p0, p1] } }'))).toEqual([
      "bridges[0].uplink.bond.mode: must be active-backup, balance-slb or 802.3ad, got \"lacp\" (XenServer's lacp is 802.3ad)",
    ]);
    expect(issues(withUplink('{ bond: { name: bond0, mode: balance-slb, members: [p0, p1, p2, p3, p4] } }'))).toEqual([
      'bridges[0].uplink.bond.members: a balance-slb bond has two to four members (four is XenServer\'s limit), got 5',
    ]);
    expect(issues(withUplink('{ bond: { name: bond0, mode: 802.3ad, members: [p0], lacp: sometimes, lacp_rate: 1, hash: layer3, system_priority: 0, port_priority: 70000 } }')).map((l) => l.split(':')[0])).toEqual([
      'bridges[0].uplink.bond.members',
      'bridges[0].uplink.bond.lacp',
      'bridges[0].uplink.bond.lacp_rate',
      'bridges[0].uplink.bond.hash',
      'bridges[0].uplink.bond.system_priority',
      'bridges[0].uplink.bond.port_priority',
    ]);
    expect(issues(withUplink('{ bond: { name: bond0, mode: balance-slb, members: [p0, p1], lacp: active, primary: p0 } }'))).toEqual([
      'bridges[0].uplink.bond.primary: does not apply to mode balance-slb (only active-backup)',
      'bridges[0].uplink.bond.lacp: does not apply to mode balance-slb (only 802.3ad)',
    ]);
    expect(issues(withUplink('{ bond: { name: bond0, members: [p0, p1], rebalance_interval: 10 } }'))).toEqual([
      'bridges[0].uplink.bond.rebalance_interval: does not apply to mode active-backup (only balance-slb)',
    ]);
  });

  it('a reload that changes the mode (or a key of it) re-creates the bond: the plan says what changed', () => {
    const a = parseConfig(withUplink('{ bond: { name: bond0, members: [peth0, peth1] } }'));
    const b = parseConfig(withUplink('{ bond: { name: bond0, mode: balance-slb, members: [peth0, peth1], rebalance_interval: 5000 } }'));
    const c = parseConfig(withUplink('{ bond: { name: bond0, mode: balance-slb, members: [peth0, peth1], rebalance_interval: 1000 } }'));
    const ab = diffConfig(a, b).filter((x) => x.line.startsWith('~ uplink'));
    expect(ab.map((x) => x.line)).toEqual(['~ uplink xenbr0 mode active-backup -> balance-slb, rebalance_interval 10000 -> 5000']);
    expect(ab[0].action).toMatchObject({ do: 'replaceUplink' });
    expect(diffConfig(b, c).map((x) => x.line)).toEqual(['~ uplink xenbr0 rebalance_interval 5000 -> 1000']);
  });
});
