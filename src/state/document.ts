// The state document: what the daemon keeps across restarts, as one versioned JSON file.
//
//   {
//     "version": 1,
//     "saved_at": 1764600000000,            // wall clock (Date.now()) of the write, ms
//     "config_hash": "sha256 hex",          // configHash() of the config the runtime records were made against
//     "config": { ...raw config document },  // that config itself, so that an edited config can be diffed against it
//     "runtime": [ RuntimeRecord, ... ],     // mutating control requests, compacted (journal.ts), in replay order
//     "fdb": { "saved_at": ms, "bridges": { "xenbr0": [ { port, mac, vlan, age_ms, ipv4 }, ... ] } } | null,
//                                            // (on disk the snapshot is its own file, store.ts; in a takeover it is here)
//     "sections": { "<name>": any JSON }     // named extra records of other subsystems (see below)
//   }
//
// API (for the daemon and for the fd handover, which sends this document over the socket):
//   emptyState(configRaw)            a fresh document for a config
//   parseState(text)                 hostile text -> { doc } | { error }: every field range-checked
//   serializeState(doc)              -> JSON text (what a takeover sends; the state file holds it with fdb: null)
//   serializeSnapshot(fdb) / parseSnapshotText(text)   the FDB snapshot file's JSON
//   configHash(raw)                  sha256 of the canonical JSON of a raw config document
//   getSection(doc, name) / setSection(doc, name, value)
//                                    extra records by name, e.g. "taps" (where each moved TAP went: netns id/name,
//                                    ifindex) or "hoststack" (host-stack originals). Unknown sections are kept as
//                                    they are, so an older daemon never drops a newer one's records.
// The live side (collect the daemon's state into a document, apply a document to a daemon) is in
// daemon-state.ts: collectState(daemon, journal) and applyState(daemon, journal, doc, log).
//
// Bounds: a state file larger than MAX_STATE_BYTES is refused; runtime records and FDB entries are capped.

import { createHash } from 'node:crypto';

export const STATE_VERSION = 1;
/** A state file or handover document larger than this is refused (the FDB snapshot dominates: ~100 B per entry). */
export const MAX_STATE_BYTES = 128 * 1024 * 1024;
/** Cap on runtime records (the journal is keyed by target, so it only grows with distinct ports and FDB entries). */
export const MAX_RUNTIME_RECORDS = 200_000;
/** Cap on FDB snapshot entries per bridge (fdb_max is at most 1_000_000). */
export const MAX_SNAPSHOT_ENTRIES = 1_000_000;

/** One recorded mutating control request: replayed by calling the control method `method` with `params`. */
export interface RuntimeRecord {
  /** Control method name (addif, delif, vlan.set, fdb.add, fdb.del, setageing, or one a later issue registers). */
  method: string;
  /** Normalised parameters; replay passes them to the method unchanged. */
  params: Record<string, unknown>;
  /** Compaction key: a newer record with the same key replaces the older one (journal.ts). */
  key: string;
  /** What the record changes, in the vocabulary of the config diff (reload.ts targetOf): e.g. "port:xenbr0/vif1.0". */
  target: string;
}

export interface FdbSnapshotEntry {
  port: string;
  mac: string;
  vlan: number;
  /** ms since the entry was last refreshed, at fdb.saved_at */
  age_ms: number;
  /** IPv4 address snooped from its ARPs as dotted quad, or null */
  ipv4: string | null;
}

export interface FdbSnapshot {
  saved_at: number;
  bridges: Record<string, FdbSnapshotEntry[]>;
}

export interface StateDocument {
  version: number;
  saved_at: number;
  config_hash: string;
  config: Record<string, unknown>;
  runtime: RuntimeRecord[];
  fdb: FdbSnapshot | null;
  sections: Record<string, unknown>;
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** sha256 of the canonical JSON (sorted keys) of a raw config document. */
export function configHash(raw: Record<string, unknown>): string {
  return createHash('sha256').update(canonical(raw)).digest('hex');
}

/** True when two JSON values are equal (key order ignored). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

export function emptyState(configRaw: Record<string, unknown>): StateDocument {
  return { version: STATE_VERSION, saved_at: Date.now(), config_hash: configHash(configRaw), config: configRaw, runtime: [], fdb: null, sections: {} };
}

export function serializeState(doc: StateDocument): string {
  doc.saved_at = Date.now();
  return `${JSON.stringify(doc)}\n`;
}

export function serializeSnapshot(fdb: FdbSnapshot): string {
  return `${JSON.stringify(fdb)}\n`;
}

/** JSON.parse of text at most MAX_STATE_BYTES long; never throws. */
function boundedJson(text: string, what: string): { value: unknown } | { error: string } {
  if (text.length > MAX_STATE_BYTES) return { error: `${what} is ${text.length} bytes (at most ${MAX_STATE_BYTES})` };
  try {
    return { value: JSON.parse(text) as unknown };
  } catch (err) {
    return { error: `not JSON: ${(err as Error).message}` };
  }
}

/** Parses and range-checks an FDB snapshot file; never throws. */
export function parseSnapshotText(text: string): { fdb: FdbSnapshot } | { error: string } {
  const j = boundedJson(text, 'snapshot');
  if ('error' in j) return j;
  const s = parseSnapshot(j.value);
  return typeof s === 'string' ? { error: s } : { fdb: s };
}

export function getSection<T = unknown>(doc: StateDocument, name: string): T | undefined {
  return doc.sections[name] as T | undefined;
}

export function setSection(doc: StateDocument, name: string, value: unknown): void {
  if (value === undefined) delete doc.sections[name];
  else doc.sections[name] = value;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isMs(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 8.64e15;
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function parseSnapshot(v: unknown): FdbSnapshot | string {
  if (!isObject(v)) return 'fdb must be an object or null';
  if (!isMs(v.saved_at)) return 'fdb.saved_at must be a wall-clock time in ms';
  if (!isObject(v.bridges)) return 'fdb.bridges must be an object';
  const bridges: Record<string, FdbSnapshotEntry[]> = {};
  for (const [name, list] of Object.entries(v.bridges)) {
    if (!Array.isArray(list)) return `fdb.bridges.${name} must be a list`;
    if (list.length > MAX_SNAPSHOT_ENTRIES) return `fdb.bridges.${name} has ${list.length} entries (at most ${MAX_SNAPSHOT_ENTRIES})`;
    const out: FdbSnapshotEntry[] = [];
    for (let i = 0; i < list.length; i++) {
      const e: unknown = list[i];
      const p = `fdb.bridges.${name}[${i}]`;
      if (!isObject(e)) return `${p} must be an object`;
      if (typeof e.port !== 'string' || e.port.length === 0 || e.port.length > 15) return `${p}.port must be an interface name`;
      if (typeof e.mac !== 'string' || !MAC_RE.test(e.mac)) return `${p}.mac must be a MAC address in lower case`;
      if (typeof e.vlan !== 'number' || !Number.isInteger(e.vlan) || e.vlan < 0 || e.vlan > 4094) return `${p}.vlan must be 0..4094`;
      if (!isMs(e.age_ms)) return `${p}.age_ms must be a non-negative number of ms`;
      if (e.ipv4 !== null && (typeof e.ipv4 !== 'string' || !IPV4_RE.test(e.ipv4))) return `${p}.ipv4 must be a dotted quad or null`;
      out.push({ port: e.port, mac: e.mac, vlan: e.vlan, age_ms: e.age_ms, ipv4: e.ipv4 as string | null });
    }
    bridges[name] = out;
  }
  return { saved_at: v.saved_at, bridges };
}

/** Parses and range-checks a state document; never throws. */
export function parseState(text: string): { doc: StateDocument } | { error: string } {
  const j = boundedJson(text, 'state');
  if ('error' in j) return j;
  const v = j.value;
  if (!isObject(v)) return { error: 'state must be a JSON object' };
  if (v.version !== STATE_VERSION) return { error: `state version ${JSON.stringify(v.version)} is not supported (this daemon reads version ${STATE_VERSION})` };
  if (!isMs(v.saved_at)) return { error: 'saved_at must be a wall-clock time in ms' };
  if (typeof v.config_hash !== 'string' || !/^[0-9a-f]{64}$/.test(v.config_hash)) return { error: 'config_hash must be a sha256 hex string' };
  if (!isObject(v.config)) return { error: 'config must be an object' };
  if (!Array.isArray(v.runtime)) return { error: 'runtime must be a list' };
  if (v.runtime.length > MAX_RUNTIME_RECORDS) return { error: `runtime has ${v.runtime.length} records (at most ${MAX_RUNTIME_RECORDS})` };
  const runtime: RuntimeRecord[] = [];
  for (let i = 0; i < v.runtime.length; i++) {
    const r: unknown = v.runtime[i];
    if (!isObject(r) || typeof r.method !== 'string' || !isObject(r.params) || typeof r.key !== 'string' || typeof r.target !== 'string') {
      return { error: `runtime[${i}] must be {method, params, key, target}` };
    }
    runtime.push({ method: r.method, params: r.params, key: r.key, target: r.target });
  }
  let fdb: FdbSnapshot | null = null;
  if (v.fdb !== null && v.fdb !== undefined) {
    const s = parseSnapshot(v.fdb);
    if (typeof s === 'string') return { error: s };
    fdb = s;
  }
  const sections = v.sections === undefined ? {} : v.sections;
  if (!isObject(sections)) return { error: 'sections must be an object' };
  return { doc: { version: STATE_VERSION, saved_at: v.saved_at, config_hash: v.config_hash, config: v.config, runtime, fdb, sections } };
}
