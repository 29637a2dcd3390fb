// The runtime journal: every mutating control request that succeeded, compacted so that it stays as small as
// the set of things it changed, replayed in order on start (after the config is applied).
//
//   addif       key addif:<br>/<port>   target port:<br>/<port>
//   delif       removes the port's addif, vlan.set and fdb records; records delif:<br>/<port> only when the
//               port came from the config (a port added at runtime just disappears from the journal)
//   vlan.set    key vlan:<br>/<port>    target port:<br>/<port>
//   fdb.add     key fdb:<br>/<vid>/<mac> target fdb:<br>/<vid>/<mac>  (the VLAN resolved at request time)
//   fdb.del     same key; recorded only when the config has that entry, else it just removes the fdb.add
//   setageing   key ageing:<br>         target bridge:<br>/ageing_time
//
// Extension point: a later issue's mutating method (locks, mirrors, VXLAN remotes, ...) registers a recorder
// with registerRecordedMethod(method, recorder); the recorder puts or removes records with the journal's
// put/remove/removeWhere. Targets use the config diff's vocabulary (reload.ts), so that an edited config
// drops exactly the runtime changes to what the edit touched.
//
// Bound: keys are per port and per FDB entry, so the journal holds at most (ports + static entries) records;
// MAX_RUNTIME_RECORDS caps it anyway (a put beyond it throws, the request gets an error reply).

import { MAX_RUNTIME_RECORDS, type RuntimeRecord } from './document.js';
import { formatMac, parseMac } from '../frame/mac.js';
import type { QosSpec } from '../bridge/qos.js';

/** What a recorder may ask the daemon about (answers at request time). */
export interface RecordContext {
  /** The VLAN of untagged frames on the port (the default of `fdb add` without --vlan), null when unknown. */
  untaggedVid(bridge: string, port: string): number | null;
  /** True when the config (not a runtime request) has this port. */
  configHasPort(bridge: string, port: string): boolean;
  /** True when the config has a static FDB entry (vid, mac). */
  configHasFdb(bridge: string, vid: number, mac: number): boolean;
  /** The port's QoS in force (src/bridge/qos.ts), null when there is no such port. */
  portQos(bridge: string, port: string): QosSpec | null;
}

/**
 * Records a request. Recording is written ahead (daemon-state.ts): the recorder runs BEFORE the method is applied
 * (result undefined) and must decide from the params and the journal alone; at replay it runs after the method.
 */
export type Recorder = (params: Record<string, unknown>, result: unknown, journal: RuntimeJournal, ctx: RecordContext) => void;

/**
 * A call replay makes before any record is replayed, for each kept record of a method that has one: it releases
 * what the record's final state takes (a locked MAC), so that replay reaches the journal's net result whatever
 * order the records were made in; the records are then replayed in order, against that released state.
 */
export type ReplayRelease = (params: Record<string, unknown>) => { method: string; params: Record<string, unknown> } | null;

export class JournalFullError extends Error {}

export class RuntimeJournal {
  private readonly records = new Map<string, RuntimeRecord>();

  get size(): number {
    return this.records.size;
  }

  /** Adds a record at the end; one with the same key is replaced (and moves to the end). */
  put(rec: RuntimeRecord): void {
    if (!this.records.has(rec.key) && this.records.size >= MAX_RUNTIME_RECORDS) {
      throw new JournalFullError(`runtime journal is full (${MAX_RUNTIME_RECORDS} records); save-config and restart to compact`);
    }
    this.records.delete(rec.key);
    this.records.set(rec.key, rec);
  }

  get(key: string): RuntimeRecord | undefined {
    return this.records.get(key);
  }

  remove(key: string): boolean {
    return this.records.delete(key);
  }

  /** Removes every record for which pred is true; returns them. */
  removeWhere(pred: (r: RuntimeRecord) => boolean): RuntimeRecord[] {
    const out: RuntimeRecord[] = [];
    for (const [k, r] of this.records) {
      if (pred(r)) {
        out.push(r);
        this.records.delete(k);
      }
    }
    return out;
  }

  list(): RuntimeRecord[] {
    return [...this.records.values()];
  }

  load(list: readonly RuntimeRecord[]): void {
    this.records.clear();
    for (const r of list) this.put(r);
  }
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : String(v);
}

/** The VLAN options of a request, as given (access / trunk / native / default). */
function vlanOptions(p: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of ['access', 'trunk', 'native', 'default']) if (p[k] !== undefined && p[k] !== null) out[k] = p[k];
  return out;
}

export function portTarget(bridge: string, port: string): string {
  return `port:${bridge}/${port}`;
}

export function fdbTarget(bridge: string, vid: number, mac: number): string {
  return `fdb:${bridge}/${vid}/${formatMac(mac)}`;
}

const RECORDERS = new Map<string, Recorder>();

/** Registers the recorder of a mutating control method (the extension point for later issues). */
export function registerRecordedMethod(method: string, recorder: Recorder): void {
  RECORDERS.set(method, recorder);
}

export function recorderOf(method: string): Recorder | undefined {
  return RECORDERS.get(method);
}

const RELEASES = new Map<string, ReplayRelease>();

/** Registers the release call replay makes for every record of `method` before replaying any (see ReplayRelease). */
export function registerReplayRelease(method: string, release: ReplayRelease): void {
  RELEASES.set(method, release);
}

export function replayReleaseOf(method: string): ReplayRelease | undefined {
  return RELEASES.get(method);
}

registerRecordedMethod('addif', (p, _r, j) => {
  const bridge = str(p.bridge);
  const port = str(p.ifname);
  j.put({ method: 'addif', params: { bridge, ifname: port, kind: p.kind ?? 'tap', ...(p.kind === 'vhost-user' ? { socket: p.socket, mode: p.mode ?? 'client' } : {}), ...vlanOptions(p) }, key: `addif:${bridge}/${port}`, target: portTarget(bridge, port) });
});

registerRecordedMethod('delif', (p, _r, j, ctx) => {
  const bridge = str(p.bridge);
  const port = str(p.ifname);
  const target = portTarget(bridge, port);
  j.removeWhere((r) => r.target === target || (r.method === 'fdb.add' && r.params.bridge === bridge && r.params.port === port));
  if (ctx.configHasPort(bridge, port)) j.put({ method: 'delif', params: { bridge, ifname: port }, key: `delif:${bridge}/${port}`, target });
});

registerRecordedMethod('vlan.set', (p, _r, j) => {
  const bridge = str(p.bridge);
  const port = str(p.port);
  j.put({ method: 'vlan.set', params: { bridge, port, ...vlanOptions(p) }, key: `vlan:${bridge}/${port}`, target: portTarget(bridge, port) });
});

function resolvedVid(p: Record<string, unknown>, ctx: RecordContext): number {
  if (typeof p.vlan === 'number') return p.vlan;
  if (typeof p.port === 'string' && typeof p.bridge === 'string') return ctx.untaggedVid(p.bridge, p.port) ?? 0;
  return 0;
}

/** The (bridge, MAC, VLAN) an fdb request is about, with its record target; null for a MAC that does not parse. */
function fdbRequest(p: Record<string, unknown>, ctx: RecordContext): { bridge: string; mac: string; macNum: number; vid: number; target: string } | null {
  const bridge = str(p.bridge);
  const mac = parseMac(str(p.mac));
  if (mac === null) return null;
  const vid = resolvedVid(p, ctx);
  return { bridge, mac: formatMac(mac), macNum: mac, vid, target: fdbTarget(bridge, vid, mac) };
}

registerRecordedMethod('fdb.add', (p, _r, j, ctx) => {
  const f = fdbRequest(p, ctx);
  if (f === null) return;
  j.put({ method: 'fdb.add', params: { bridge: f.bridge, mac: f.mac, port: p.port, vlan: f.vid }, key: f.target, target: f.target });
});

registerRecordedMethod('fdb.del', (p, _r, j, ctx) => {
  const f = fdbRequest(p, ctx);
  if (f === null) return;
  if (ctx.configHasFdb(f.bridge, f.vid, f.macNum)) j.put({ method: 'fdb.del', params: { bridge: f.bridge, mac: f.mac, vlan: f.vid }, key: f.target, target: f.target });
  else j.remove(f.target);
});

registerRecordedMethod('setageing', (p, _r, j) => {
  const bridge = str(p.bridge);
  j.put({ method: 'setageing', params: { bridge, seconds: p.seconds }, key: `ageing:${bridge}`, target: `bridge:${bridge}/ageing_time` });
});

// vxlan ports (src/daemon/vxlan.ts). A runtime vxlan.add is one record (its params are a config `vxlan` entry); a
// remote added or removed at runtime is one record per (port, ip): a del cancels an add made at runtime, else it is
// kept (the remote came from the config). vxlan.del forgets the port's records and is kept for a config port.
registerRecordedMethod('vxlan.add', (p, _r, j) => {
  const bridge = str(p.bridge);
  const name = str(p.name);
  const params = Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined && v !== null));
  j.put({ method: 'vxlan.add', params, key: `vxlan:${bridge}/${name}`, target: portTarget(bridge, name) });
});

registerRecordedMethod('vxlan.del', (p, _r, j, ctx) => {
  const bridge = str(p.bridge);
  const name = str(p.name);
  const target = portTarget(bridge, name);
  j.removeWhere((r) => r.target === target || (r.method === 'fdb.add' && r.params.bridge === bridge && r.params.port === name));
  if (ctx.configHasPort(bridge, name)) j.put({ method: 'vxlan.del', params: { bridge, name }, key: `vxlandel:${bridge}/${name}`, target });
});

for (const op of ['add', 'del'] as const) {
  registerRecordedMethod(`vxlan.remote.${op}`, (p, _r, j) => {
    const bridge = str(p.bridge);
    const name = str(p.name);
    const ip = str(p.ip);
    const key = `vxlanremote:${bridge}/${name}/${ip}`;
    if (op === 'del' && j.get(key)?.method === 'vxlan.remote.add') j.remove(key);
    else j.put({ method: `vxlan.remote.${op}`, params: { bridge, name, ip }, key, target: portTarget(bridge, name) });
  });
}

/**
 * True when a config change with target `change` touches a runtime record with target `record`:
 * the same target, or the change re-creates or removes the whole bridge (`bridge:<br>`).
 */
export function touches(change: string, record: string): boolean {
  if (change === record) return true;
  if (change.startsWith('bridge:') && !change.includes('/')) {
    const br = change.slice('bridge:'.length);
    return record.startsWith(`bridge:${br}/`) || record.includes(`:${br}/`);
  }
  return false;
}
