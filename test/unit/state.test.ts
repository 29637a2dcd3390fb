// The state module without a daemon: the document's parser against hostile input, the journal's compaction rules,
// the state file's lock and atomic writes, and the config diff's dry-run lines.

import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { configHash, emptyState, parseState, serializeState, setSection, getSection } from '../../src/state/document.js';
import { recorderOf, RuntimeJournal, touches, type RecordContext } from '../../src/state/journal.js';
import { diffConfig } from '../../src/state/reload.js';
import { StateLockedError, StateStore, statePath, stateKey } from '../../src/state/store.js';
import { DaemonState, SNAPSHOT_SLOTS_PER_TURN } from '../../src/state/daemon-state.js';
import type { FdbSnapshotEntry } from '../../src/state/document.js';
import type { Daemon } from '../../src/daemon/daemon.js';
import { createLogger } from '../../src/log.js';

const MAC = '02:00:00:00:00:01';

describe('state document', () => {
  it('round-trips through serializeState and parseState, named sections included', () => {
    const doc = emptyState({ bridges: [] });
    doc.runtime.push({ method: 'addif', params: { bridge: 'xenbr0', ifname: 'vif1.0' }, key: 'addif:xenbr0/vif1.0', target: 'port:xenbr0/vif1.0' });
    doc.fdb = { saved_at: 1000, bridges: { xenbr0: [{ port: 'vif1.0', mac: MAC, vlan: 10, age_ms: 1500, ipv4: '198.18.0.1' }] } };
    setSection(doc, 'taps', [{ port: 'vif1.0', netns: 'vm1', ifindex: 7 }]);
    const r = parseState(serializeState(doc));
    expect('doc' in r).toBe(true);
    if (!('doc' in r)) return;
    expect(r.doc.runtime).toEqual(doc.runtime);
    expect(r.doc.fdb).toEqual(doc.fdb);
    expect(getSection(r.doc, 'taps')).toEqual([{ port: 'vif1.0', netns: 'vm1', ifindex: 7 }]);
  });

  it('rejects hostile documents with a reason', () => {
    const good = JSON.parse(serializeState(emptyState({}))) as Record<string, unknown>;
    const bad = (patch: Record<string, unknown>): string => {
      const r = parseState(JSON.stringify({ ...good, ...patch }));
      return 'error' in r ? r.error : 'accepted';
    };
    expect(bad({ version: 2 })).toMatch(/version 2 is not supported/);
    expect(bad({ config_hash: 'x' })).toMatch(/config_hash/);
    expect(bad({ runtime: [{ method: 'addif' }] })).toMatch(/runtime\[0\]/);
    expect(bad({ runtime: {} })).toMatch(/runtime must be a list/);
    const entry = { port: 'vif1.0', mac: MAC, vlan: 1, age_ms: 0, ipv4: null };
    expect(bad({ fdb: { saved_at: 1, bridges: { b: [{ ...entry, mac: 'zz' }] } } })).toMatch(/mac/);
    expect(bad({ fdb: { saved_at: 1, bridges: { b: [{ ...entry, vlan: 4095 }] } } })).toMatch(/vlan/);
    expect(bad({ fdb: { saved_at: 1, bridges: { b: [{ ...entry, ipv4: '300.1.1.1' }] } } })).toMatch(/ipv4/);
    expect(bad({ fdb: { saved_at: 1, bridges: { b: [{ ...entry, age_ms: -5 }] } } })).toMatch(/age_ms/);
    expect(bad({ fdb: { saved_at: 1, bridges: { b: [{ ...entry, port: 'x'.repeat(16) }] } } })).toMatch(/port/);
    expect(bad({ sections: [] })).toMatch(/sections/);
    expect(bad({})).toBe('accepted');
    const r = parseState('{"version":');
    expect('error' in r && r.error).toMatch(/not JSON/);
  });

  it('hashes a config independently of key order', () => {
    expect(configHash({ a: 1, b: { c: 2, d: 3 } })).toBe(configHash({ b: { d: 3, c: 2 }, a: 1 }));
    expect(configHash({ a: 1 })).not.toBe(configHash({ a: 2 }));
  });
});

describe('runtime journal', () => {
  const ctx = (configPorts: string[] = [], configFdb = false): RecordContext => ({
    untaggedVid: () => 10,
    configHasPort: (_b, p) => configPorts.includes(p),
    configHasFdb: () => configFdb,
    portQos: () => null,
  });
  const record = (j: RuntimeJournal, method: string, params: Record<string, unknown>, c = ctx()): void => {
    recorderOf(method)!(params, null, j, c);
  };

  it('records qos set written ahead as the net QoS the request gives the port (result unknown yet)', async () => {
    await import('../../src/daemon/qos.js'); // registers the qos recorders
    const j = new RuntimeJournal();
    const cur = { rateLimit: { kbps: 100_000, burstKb: 50 }, egressRateLimit: null, storm: null };
    record(j, 'qos.set', { bridge: 'b', port: 'vif1.0', broadcast_pps: 200 }, { ...ctx(), portQos: () => cur });
    // the limit in force is kept in the record beside the new threshold: a replay sets exactly what was answered
    expect(j.list()[0].params).toMatchObject({ kbps: 100_000, burst_kb: 50, broadcast_pps: 200, storm_action: 'drop' });
    // a request that will fail (no such port, bad parameter) records nothing
    record(j, 'qos.set', { bridge: 'b', port: 'vif9.0', kbps: 1 }, ctx());
    record(j, 'qos.set', { bridge: 'b', port: 'vif1.0', kbps: -1 }, { ...ctx(), portQos: () => cur });
    expect(j.list()).toHaveLength(1);
  });

  it('forgets a port added at runtime, with its VLAN and FDB records, when it is deleted', () => {
    const j = new RuntimeJournal();
    record(j, 'addif', { bridge: 'b', ifname: 'vif3.0', kind: 'attach', access: 10 });
    record(j, 'vlan.set', { bridge: 'b', port: 'vif3.0', access: 20 });
    record(j, 'fdb.add', { bridge: 'b', mac: MAC, port: 'vif3.0' });
    expect(j.list().map((r) => r.method)).toEqual(['addif', 'vlan.set', 'fdb.add']);
    expect(j.list()[2].params).toEqual({ bridge: 'b', mac: MAC, port: 'vif3.0', vlan: 10 });
    record(j, 'delif', { bridge: 'b', ifname: 'vif3.0' });
    expect(j.list()).toEqual([]);
  });

  it('records delif of a config port, and an addif after it in order', () => {
    const j = new RuntimeJournal();
    const c = ctx(['vif1.0']);
    record(j, 'vlan.set', { bridge: 'b', port: 'vif1.0', access: 20 }, c);
    record(j, 'delif', { bridge: 'b', ifname: 'vif1.0' }, c);
    record(j, 'addif', { bridge: 'b', ifname: 'vif1.0', kind: 'tap' }, c);
    expect(j.list().map((r) => r.method)).toEqual(['delif', 'addif']);
  });

  it('keeps one record per target: the newest', () => {
    const j = new RuntimeJournal();
    record(j, 'setageing', { bridge: 'b', seconds: 60 });
    record(j, 'setageing', { bridge: 'b', seconds: 90 });
    expect(j.list()).toEqual([{ method: 'setageing', params: { bridge: 'b', seconds: 90 }, key: 'ageing:b', target: 'bridge:b/ageing_time' }]);
  });

  it('fdb del removes a runtime entry, and is recorded only for an entry of the config', () => {
    const j = new RuntimeJournal();
    record(j, 'fdb.add', { bridge: 'b', mac: MAC, port: 'vif1.0', vlan: 5 });
    record(j, 'fdb.del', { bridge: 'b', mac: MAC, vlan: 5 });
    expect(j.size).toBe(0);
    record(j, 'fdb.del', { bridge: 'b', mac: MAC, vlan: 5 }, ctx([], true));
    expect(j.list()).toEqual([{ method: 'fdb.del', params: { bridge: 'b', mac: MAC, vlan: 5 }, key: `fdb:b/5/${MAC}`, target: `fdb:b/5/${MAC}` }]);
  });

  it('a change to a whole bridge touches every record of that bridge and no other', () => {
    expect(touches('bridge:b', 'port:b/vif1.0')).toBe(true);
    expect(touches('bridge:b', 'bridge:b/ageing_time')).toBe(true);
    expect(touches('bridge:b', `fdb:b/0/${MAC}`)).toBe(true);
    expect(touches('bridge:b', 'port:xb/vif1.0')).toBe(false);
    expect(touches('port:b/vif1.0', 'port:b/vif1.0')).toBe(true);
    expect(touches('port:b/vif1.0', 'port:b/vif2.0')).toBe(false);
  });
});

describe('state file', () => {
  let dir = '';
  afterEach(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
    dir = '';
  });

  it('is <state_dir>/<socket path, escaped>.state, written atomically, and locked against a second daemon', () => {
    dir = mkdtempSync(join(tmpdir(), 'tb-state-'));
    const stateDir = join(dir, 'state');
    const store = StateStore.open(stateDir, '/run/tapbridge/lab1.sock');
    expect(store.path).toBe(join(stateDir, 'run-tapbridge-lab1.sock.state'));
    expect(store.read(() => undefined)).toEqual({ state: null, fdb: null });
    const doc = emptyState({ bridges: [] });
    store.write(doc);
    expect(readdirSync(stateDir).sort()).toEqual(['run-tapbridge-lab1.sock.state', 'run-tapbridge-lab1.sock.state.lock']);
    expect(store.read(() => undefined).state?.config_hash).toBe(doc.config_hash);
    expect(() => StateStore.open(stateDir, '/run/tapbridge/lab1.sock')).toThrow(StateLockedError);
    // another socket path is another daemon, also with the same file name
    StateStore.open(stateDir, '/elsewhere/lab1.sock').close();
    StateStore.open(stateDir, '/run/tapbridge/lab2.sock').close();
    store.close();
    StateStore.open(stateDir, '/run/tapbridge/lab1.sock').close();
  });

  it('writes the FDB snapshot to its own file off the main loop, one write at a time, and reads both back', async () => {
    dir = mkdtempSync(join(tmpdir(), 'tb-state-'));
    const store = StateStore.open(dir, 'x.sock');
    const fdb = { saved_at: 1000, bridges: { xenbr0: [{ port: 'vif1.0', mac: MAC, vlan: 0, age_ms: 10, ipv4: null }] } };
    const first = store.writeFdb(fdb);
    expect(await store.writeFdb(fdb)).toBe(false);
    expect(store.fdbWritesSkipped).toBe(1);
    expect(await first).toBe(true);
    await store.idle();
    store.write(emptyState({ bridges: [] }));
    const r = store.read(() => undefined);
    expect(r.fdb).toEqual(fdb);
    expect(r.state?.fdb).toBeNull();
    const key = stateKey('x.sock');
    expect(readdirSync(dir).sort()).toEqual([`${key}.fdb`, `${key}.state`, `${key}.state.lock`]);
    store.close();
  });

  it('the periodic snapshot streams slice by slice into one file that reads back as every entry of every bridge', async () => {
    dir = mkdtempSync(join(tmpdir(), 'tb-state-'));
    const store = StateStore.open(dir, 'x.sock');
    // a fake daemon: bridge a has 2.5 slices of entries (one per pool slot), b three, c none
    const entries = (n: number, port: string): FdbSnapshotEntry[] => Array.from({ length: n }, (_, i) => ({
      port, mac: `02:00:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
      vlan: i % 4095, age_ms: i, ipv4: i % 2 === 0 ? null : '198.18.0.1',
    }));
    const fdb: Record<string, FdbSnapshotEntry[]> = { a: entries(Math.floor(SNAPSHOT_SLOTS_PER_TURN * 2.5), 'vif1.0'), b: entries(3, 'vif2.0'), c: [] };
    let slices = 0;
    const fake = {
      bridgeNames: () => Object.keys(fdb),
      fdbSnapshotSlice: (name: string, from: number, to: number, out: FdbSnapshotEntry[]) => {
        slices++;
        out.push(...fdb[name].slice(from, to));
        return fdb[name].length;
      },
    } as unknown as Daemon;
    const config = parseConfig('bridges: []\n');
    const state = new DaemonState(fake, store, config, null, createLogger({ level: 'silent', isTty: false, journal: false }));
    await (state as unknown as { snapshot(): Promise<void> }).snapshot();
    expect(slices).toBe(3 + 1 + 1);
    const r = store.read(() => undefined);
    expect(r.fdb?.bridges).toEqual(fdb);
    store.close();
  });

  it('moves a corrupt file aside and reports it instead of failing', () => {
    dir = mkdtempSync(join(tmpdir(), 'tb-state-'));
    const store = StateStore.open(dir, 'x.sock');
    writeFileSync(statePath(dir, 'x.sock'), '{"version": 1, "saved_at": "soon"}');
    const bad: string[] = [];
    expect(store.read((error) => bad.push(error))).toEqual({ state: null, fdb: null });
    expect(bad).toEqual(['saved_at must be a wall-clock time in ms']);
    expect(readdirSync(dir).some((f) => f.startsWith(`${stateKey('x.sock')}.state.bad-`))).toBe(true);
    store.close();
  });
});

describe('config diff (reload --dry-run lines)', () => {
  const base = `
bridges:
  - name: xenbr0
    uplink: { interface: peth0, trunk: all }
    fdb: [ { mac: "${MAC}", port: vif1.0 } ]
    ports:
      - { name: vif1.0, vlan: 10 }
      - { name: vif3.0 }
      - { name: vif4.0, kind: attach }
`;
  it('prints the issue\'s formats and orders removals before changes before additions', () => {
    const next = `
bridges:
  - name: xenbr0
    ageing_time: 60
    uplink: { interface: peth0, trunk: [10, 20] }
    fdb: [ { mac: "${MAC}", port: vif4.0, vlan: 0 } ]
    ports:
      - { name: vif1.0, vlan: 20 }
      - { name: vif4.0, kind: attach, isolated: true }
      - { name: vif7.0, kind: attach, vlan: 10 }
`;
    const lines = diffConfig(parseConfig(base), parseConfig(next)).map((c) => c.line);
    expect(lines).toEqual([
      '- port xenbr0/vif3.0',
      `- fdb xenbr0 ${MAC} vlan 10 vif1.0`,
      '~ bridge xenbr0 ageing_time 300 -> 60',
      '~ uplink xenbr0/peth0 vlan trunk all -> trunk 10,20',
      '~ port xenbr0/vif1.0 vlan 10 -> 20',
      '~ port xenbr0/vif4.0 isolated false -> true',
      '+ port xenbr0/vif7.0 (attach, access 10)',
      `+ fdb xenbr0 ${MAC} vlan 0 vif4.0`,
    ]);
  });

  it('re-creates a port whose kind changes, and one whose keys of a later feature change', () => {
    const a = parseConfig(base);
    const b = parseConfig(base.replace('{ name: vif3.0 }', '{ name: vif3.0, kind: attach }'));
    expect(diffConfig(a, b).map((c) => c.line)).toEqual(['~ port xenbr0/vif3.0 kind tap -> attach (re-created)']);
    const c = parseConfig(base);
    ((c.raw.bridges as Record<string, unknown>[])[0].ports as Record<string, unknown>[])[1].lock = { max_macs: 1 };
    expect(diffConfig(a, c).map((x) => x.line)).toEqual(['~ port xenbr0/vif3.0 options of later features (re-created)']);
    expect(diffConfig(a, parseConfig(base))).toEqual([]);
  });
});
