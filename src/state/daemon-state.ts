// The daemon's runtime state, wired: the journal of mutating control requests, the state file, FDB snapshots,
// replay on start, live reload and save-config. run.ts creates one DaemonState per daemon; daemon.ts knows
// nothing of it (it offers the primitives reload.ts and restoreFdb use).
//
//   const state = new DaemonState(daemon, store, config, configPath, log)
//   state.load()                                  read the state files (host-stack originals known from here)
//   daemon.start(); state.restore(methods)        replay the stored state (see below), restore the FDB
//   new ControlServer(path, state.wrap(methods))  recorded methods persist; adds save_config and reload
//   state.startSnapshots()                        FDB snapshot every fdb_snapshot_interval seconds
//   process.on('SIGHUP', () => state.reloadFromFile())
//   state.shutdown()                              before daemon.stop(): last FDB snapshot, write, unlock
//
// Replay: when the stored config hash equals the config's, every record replays. When the config was edited,
// the stored config is diffed against the new one (reload.ts) and every record whose target the edit touched is
// dropped and logged (the file wins there); the rest replays: first the release call of each record that has one
// (journal.ts ReplayRelease: a lock record clears its port's lock), then the records in order, so that the net
// result is the state that was acknowledged, not the config's state patched record by record. A record that fails
// to replay (its port is gone, ...) is logged and dropped.
//
// Recording is written ahead (wrap): a mutating request's record is in the state file before the request is
// applied; a request whose record cannot be written is refused with state_write_failed and not applied.
//
// For the fd handover: serializeState(state.collectState()) is the document to send (journal, a fresh FDB snapshot,
// named sections); the new daemon checks it with parseState(text), calls state.load(doc) before daemon.start() and
// state.restore(methods) after it. setSection/getSection keep other subsystems' records (e.g. where each moved TAP
// went) in it; the section "hoststack" holds the host-stack originals (hoststack.ts export/import).

import type { Logger } from '../log.js';
import type { Daemon } from '../daemon/daemon.js';
import { ConfigError, loadConfig, parseConfig, validateConfig, type DaemonConfig } from '../config/config.js';
import { ControlError } from '../control/errors.js';
import type { MethodHandler } from '../control/server.js';
import { parseMac } from '../frame/mac.js';
import { exportHostStackOriginals, importHostStackOriginals } from '../daemon/hoststack.js';
import { configHash, emptyState, type FdbSnapshotEntry, type RuntimeRecord, type StateDocument } from './document.js';
import { recorderOf, replayReleaseOf, RuntimeJournal, touches, type RecordContext } from './journal.js';
import { applyPlan, diffConfig, recreatedPorts, type Change } from './reload.js';
import { effectiveConfigYaml } from './save-config.js';
import { MDB_SECTION } from '../mdb/snapshot.js';
import type { StateStore } from './store.js';

/** True when two journal listings hold the same records in the same order. */
function sameRecords(a: readonly RuntimeRecord[], b: readonly RuntimeRecord[]): boolean {
  return a.length === b.length && a.every((r, i) => r === b[i]);
}

/** FDB pool slots a periodic snapshot collects per event-loop turn (~1-2 ms of work). */
export const SNAPSHOT_SLOTS_PER_TURN = 4096;
/** The state section with the host-stack originals (src/daemon/hoststack.ts), kept across restarts. */
export const HOSTSTACK_SECTION = 'hoststack';
/** Write failures are logged at most this often. */
const WRITE_ERROR_LOG_INTERVAL_MS = 10_000;

export interface ReloadResult {
  changes: string[];
  applied: boolean;
  errors: string[];
}

export class DaemonState {
  readonly journal = new RuntimeJournal();
  private readonly daemon: Daemon;
  private readonly store: StateStore | null;
  private readonly configPath: string | null;
  private readonly socketOverride: string | undefined;
  private readonly log: Logger;
  /** The config file in force, as written (never mutated by runtime requests). */
  private file: DaemonConfig;
  private doc: StateDocument;
  private methods: ReadonlyMap<string, MethodHandler> = new Map();
  private snapshotTimer: NodeJS.Timeout | null = null;
  /** What load() read, until restore() applies it. */
  private loaded: StateDocument | null = null;
  /** A periodic snapshot is being collected or written. */
  private collecting = false;
  private lastWriteErrorMs = -Infinity;
  /** The host-stack section as last written (JSON), to see whether a request changed it. */
  private writtenSections = '';
  /** Counters (shown in logs at shutdown). */
  writeErrors = 0;
  writes = 0;
  snapshots = 0;

  constructor(daemon: Daemon, store: StateStore | null, config: DaemonConfig, configPath: string | null, log: Logger, socketOverride?: string) {
    this.daemon = daemon;
    this.store = store;
    this.configPath = configPath;
    this.socketOverride = socketOverride;
    this.log = log.child({ subsystem: 'state' });
    this.file = validateConfig(structuredClone(config.raw));
    if (socketOverride !== undefined) this.file.controlSocket = socketOverride;
    this.doc = emptyState(config.raw);
  }

  private readonly ctx: RecordContext = {
    untaggedVid: (bridge, port) => this.daemon.untaggedVid(bridge, port),
    configHasPort: (bridge, port) => this.file.bridges.some((b) => b.name === bridge &&
      (b.ports.some((p) => p.name === port) || b.vxlan.some((v) => v.name === port) || b.uplink?.interface === port || b.uplink?.bond?.name === port)),
    configHasFdb: (bridge, vid, mac) => this.file.bridges.some((b) => b.name === bridge && b.fdb.some((f) => f.vlan === vid && f.mac === mac)),
    portQos: (bridge, port) => this.daemon.portQos(bridge, port),
  };

  /**
   * Reads the stored state: `received` when given (a takeover's document), else the state files (if any). Call
   * BEFORE daemon.start(): the host-stack originals it carries must be known before ports silence their netdevs
   * (a restarted daemon finds its own values there, not the originals).
   */
  load(received?: StateDocument): void {
    for (const n of this.store?.notes ?? []) this.log[n.level](n.fields, n.msg);
    let stored: StateDocument | null = received ?? null;
    if (received === undefined && this.store !== null) {
      const r = this.store.read((error, movedTo) => this.log.error({ error, moved_to: movedTo }, 'state file unreadable; ignored'));
      // a snapshot without a state document (the document was unreadable) still restores the FDB
      stored = r.state ?? (r.fdb !== null ? emptyState(this.file.raw) : null);
      if (stored !== null) stored.fdb = r.fdb;
    }
    this.loaded = stored;
    const originals = stored?.sections[HOSTSTACK_SECTION];
    if (originals !== undefined) {
      const problems = importHostStackOriginals(originals);
      if (problems.length > 0) this.log.warn({ problems }, 'host-stack originals in the state skipped');
    }
  }

  /**
   * Applies what load() read (replay, FDB restore), then writes the state file. Call after daemon.start(), with the
   * unwrapped control methods.
   */
  restore(methods: ReadonlyMap<string, MethodHandler>, opts: { write?: boolean } = {}): void {
    this.methods = methods;
    if (this.loaded !== null) this.applyState(this.loaded);
    this.loaded = null;
    // a takeover writes a turn later (write: false): the fsync must not lengthen the forwarding gap
    if (opts.write !== false) this.persist();
  }

  /** Applies a state document (from the state file or a takeover) to the daemon; see the file comment. */
  applyState(stored: StateDocument): void {
    let keep: (r: RuntimeRecord) => boolean = () => true;
    if (stored.config_hash !== configHash(this.file.raw)) {
      let old: DaemonConfig | null = null;
      try {
        old = validateConfig(structuredClone(stored.config));
        if (this.socketOverride !== undefined) old.controlSocket = this.socketOverride;
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'the stored config no longer validates; every runtime change counts as touched by the edit');
      }
      const targets = old === null ? null : diffConfig(old, this.file).flatMap((c) => c.targets);
      keep = (r) => targets !== null && !targets.some((t) => touches(t, r.target));
      this.log.info({ changes: targets?.length ?? 'all' }, 'config changed since the state was saved');
    }
    const kept: RuntimeRecord[] = [];
    for (const r of stored.runtime) {
      if (keep(r)) kept.push(r);
      else this.log.warn({ method: r.method, params: r.params }, 'runtime change dropped: the config edit touched what it changed');
    }
    const released = this.release(kept);
    let replayed = 0;
    for (const r of kept) {
      if (this.replay(r)) replayed++;
      else if (released.has(r)) this.log.error({ method: r.method, params: r.params }, 'runtime change not replayed after its release: what it changed is left released (e.g. the port unlocked)');
    }
    if (stored.fdb !== null) {
      const r = this.daemon.restoreFdb(stored.fdb.bridges, Date.now() - stored.fdb.saved_at);
      this.log.info(r, 'FDB snapshot restored');
    }
    if (stored.sections[MDB_SECTION] !== undefined) {
      const r = this.daemon.restoreMdb(stored.sections[MDB_SECTION]);
      this.log.info(r, 'multicast database restored');
    }
    this.doc.sections = { ...stored.sections, ...this.doc.sections };
    this.log.info({ replayed, journal: this.journal.size }, 'runtime state replayed');
  }

  /**
   * The release calls of the kept records (journal.ts ReplayRelease), made before any record replays; returns the
   * records whose release was made. A release that fails (its port does not exist yet) had nothing to release.
   */
  private release(records: readonly RuntimeRecord[]): Set<RuntimeRecord> {
    const done = new Set<RuntimeRecord>();
    for (const r of records) {
      const call = replayReleaseOf(r.method)?.(r.params);
      const handler = call === null || call === undefined ? undefined : this.methods.get(call.method);
      if (call === null || call === undefined || handler === undefined) continue;
      try {
        handler(call.params, null);
        done.add(r);
      } catch {
        // nothing to release
      }
    }
    return done;
  }

  /** Calls the record's method; on success the record goes (back) into the journal. */
  private replay(r: RuntimeRecord): boolean {
    const handler = this.methods.get(r.method);
    if (handler === undefined) {
      this.log.warn({ method: r.method, params: r.params }, 'runtime change dropped: this daemon has no such method');
      return false;
    }
    try {
      const result = handler(r.params, null);
      const rec = recorderOf(r.method);
      if (rec !== undefined) rec(r.params, result, this.journal, this.ctx);
      return true;
    } catch (err) {
      this.log.warn({ method: r.method, params: r.params, err: (err as Error).message }, 'runtime change could not be replayed; dropped');
      return false;
    }
  }

  /** The current state as a document (what the state file holds; what a takeover sends). */
  collectState(): StateDocument {
    this.doc.config = this.file.raw;
    this.doc.config_hash = configHash(this.file.raw);
    this.doc.runtime = this.journal.list();
    this.doc.sections[HOSTSTACK_SECTION] = exportHostStackOriginals();
    this.doc.fdb = { saved_at: Date.now(), bridges: this.daemon.fdbSnapshot() };
    this.doc.sections[MDB_SECTION] = this.daemon.mdbSnapshot();
    return this.doc;
  }

  /** Named extra records (for other subsystems, e.g. the fd handover's moved TAPs); persisted with the next write. */
  setSection(name: string, value: unknown): void {
    if (value === undefined) delete this.doc.sections[name];
    else this.doc.sections[name] = value;
  }

  getSection(name: string): unknown {
    return this.doc.sections[name];
  }

  /** A section of what load() read, before restore() (e.g. the moved TAPs, opened before the ports). */
  loadedSection(name: string): unknown {
    return this.loaded?.sections[name];
  }

  /** Writes the state document (journal, config, sections; not the FDB) synchronously; throws the write's error. */
  private write(): void {
    if (this.store === null) return;
    this.doc.config = this.file.raw;
    this.doc.config_hash = configHash(this.file.raw);
    this.doc.runtime = this.journal.list();
    this.doc.sections[HOSTSTACK_SECTION] = exportHostStackOriginals();
    this.store.write(this.doc);
    this.writtenSections = JSON.stringify(this.doc.sections[HOSTSTACK_SECTION] ?? null);
    this.writes++;
  }

  /** write() for a request not yet applied: on failure the journal is `before` again and the request is refused. */
  private writeAhead(before: readonly RuntimeRecord[]): void {
    if (this.store === null) return;
    try {
      this.write();
    } catch (err) {
      this.journal.load(before);
      this.writeFailed(err, this.store.path);
      const e = err as NodeJS.ErrnoException;
      const errno = typeof e.code === 'string' ? e.code : 'EIO';
      throw new ControlError('state_write_failed', `not applied: cannot write the state file ${this.store.path}: ${errno} (${e.message})`,
        { errno, path: this.store.path });
    }
  }

  /** True when the host-stack originals differ from what the last write put on disk. */
  private sectionsChanged(): boolean {
    return JSON.stringify(exportHostStackOriginals() ?? null) !== this.writtenSections;
  }

  /** Writes the state document (journal, config, sections; not the FDB) synchronously. Never throws (failures are logged). */
  persist(): void {
    if (this.store === null || this.store.isClosed) return;
    try {
      this.write();
    } catch (err) {
      this.writeFailed(err, this.store.path);
    }
  }

  private writeFailed(err: unknown, path: string): void {
    this.writeErrors++;
    const now = Date.now();
    if (now - this.lastWriteErrorMs >= WRITE_ERROR_LOG_INTERVAL_MS) {
      this.lastWriteErrorMs = now;
      this.log.error({ err, path, write_errors: this.writeErrors }, 'cannot write the state (logged at most every 10 s)');
    }
  }

  /**
   * The periodic FDB snapshot: collected and serialised SNAPSHOT_SLOTS_PER_TURN pool slots per event-loop turn (a
   * large FDB never stalls forwarding for long), then written on libuv's thread pool. One at a time; a snapshot due
   * meanwhile is skipped.
   */
  private async snapshot(): Promise<void> {
    const store = this.store;
    if (store === null || this.collecting) return;
    this.collecting = true;
    try {
      const savedAt = Date.now();
      // each slice is written as it is made (the write is the yield between slices): the snapshot never exists as
      // one string, so a 100k-entry FDB does not grow the heap by its JSON (measured: +40 MB RSS when it did)
      const written = await store.writeFdbStream(async (append) => {
        let bridgeSep = '';
        await append(`{"saved_at":${savedAt},"bridges":{`);
        for (const name of this.daemon.bridgeNames()) {
          let entrySep = '';
          await append(`${bridgeSep}${JSON.stringify(name)}:[`);
          bridgeSep = ',';
          for (let from = 0; ; from += SNAPSHOT_SLOTS_PER_TURN) {
            const out: FdbSnapshotEntry[] = [];
            const slots = this.daemon.fdbSnapshotSlice(name, from, from + SNAPSHOT_SLOTS_PER_TURN, out);
            if (out.length > 0) {
              await append(entrySep + out.map((e) => JSON.stringify(e)).join(','));
              entrySep = ',';
            } else {
              await new Promise<void>((resolve) => setImmediate(resolve));
            }
            if (from + SNAPSHOT_SLOTS_PER_TURN >= slots) break;
          }
          await append(']');
        }
        await append('}}\n');
      });
      if (written) this.snapshots++;
    } catch (err) {
      this.writeFailed(err, store.fdbPath);
    } finally {
      this.collecting = false;
    }
  }

  /**
   * The control methods with recording around the mutating ones, plus save_config and reload. A recorded request is
   * written ahead: its record goes into the journal and the state file first, and only once that write is durable is
   * the request applied; when the write fails the journal is put back and the request is refused with
   * state_write_failed (data: errno, path), nothing applied. A request that then fails takes its record out again.
   */
  wrap(methods: ReadonlyMap<string, MethodHandler>): Map<string, MethodHandler> {
    this.methods = methods;
    const out = new Map<string, MethodHandler>();
    for (const [name, handler] of methods) {
      const rec = recorderOf(name);
      if (rec === undefined) {
        out.set(name, handler);
        continue;
      }
      out.set(name, (params, client) => {
        const before = this.journal.list();
        try {
          rec(params, undefined, this.journal, this.ctx);
        } catch (err) {
          this.journal.load(before);
          throw new ControlError('io_error', `not applied: the change cannot be recorded in the state: ${(err as Error).message}`);
        }
        const recorded = !sameRecords(before, this.journal.list());
        if (recorded) this.writeAhead(before);
        let result: unknown;
        try {
          result = handler(params, client);
        } catch (err) {
          if (recorded) {
            this.journal.load(before);
            this.persist();
          }
          throw err;
        }
        // what the request changed besides the journal (host-stack originals of a new port) follows best-effort
        if (!recorded || this.sectionsChanged()) this.persist();
        return result;
      });
    }
    out.set('save_config', () => ({ yaml: effectiveConfigYaml(this.daemon, this.file) }));
    out.set('reload', (p) => {
      if (p.config !== undefined && typeof p.config !== 'string') throw new ControlError('invalid_params', 'config must be the text of a config file');
      if (p.dry_run !== undefined && typeof p.dry_run !== 'boolean') throw new ControlError('invalid_params', 'dry_run must be true or false');
      return this.reload(p.config as string | undefined, p.dry_run === true);
    });
    return out;
  }

  startSnapshots(): void {
    if (this.snapshotTimer !== null) clearInterval(this.snapshotTimer);
    this.snapshotTimer = null;
    const s = this.file.fdbSnapshotIntervalS;
    if (s <= 0 || this.store === null) return;
    this.snapshotTimer = setInterval(() => void this.snapshot(), s * 1000);
    this.snapshotTimer.unref();
  }

  /** No more FDB snapshots (a daemon that handed over: the state file is the new daemon's). */
  stopSnapshots(): void {
    if (this.snapshotTimer !== null) clearInterval(this.snapshotTimer);
    this.snapshotTimer = null;
  }

  /** SIGHUP: re-reads the config path. Errors are logged (and returned). */
  reloadFromFile(): ReloadResult | null {
    try {
      return this.reload(undefined, false);
    } catch (err) {
      if (!(err instanceof ControlError)) this.log.error({ err }, 'reload failed');
      return null;
    }
  }

  /**
   * Diffs the config in force against `text` (or the config file) and applies the difference, unless dryRun.
   * An invalid config throws ControlError invalid_config (details.issues) and changes nothing.
   */
  reload(text: string | undefined, dryRun: boolean): ReloadResult {
    let next: DaemonConfig;
    const source = text === undefined ? this.configPath ?? '(config)' : '(reload --config)';
    try {
      if (text !== undefined) next = parseConfig(text, source);
      else if (this.configPath !== null) next = loadConfig(this.configPath);
      else throw new ControlError('invalid_params', 'this daemon has no config file to re-read: give the config text');
    } catch (err) {
      if (err instanceof ConfigError) {
        this.log.error({ issues: err.issues, source }, 'reload rejected: invalid configuration; keeping the old one');
        throw new ControlError('invalid_config', err.message, { issues: err.issues });
      }
      throw err;
    }
    if (this.socketOverride !== undefined) next.controlSocket = this.socketOverride;
    const plan = diffConfig(this.file, next);
    const lines = plan.map((c) => c.line);
    if (dryRun) return { changes: lines, applied: false, errors: [] };
    const errors: string[] = [];
    applyPlan(this.daemon, plan, next, (c, err) => {
      errors.push(`${c.line}: ${err.message}`);
      this.log.error({ change: c.line, err: err.message }, 'reload: change failed');
    });
    this.dropTouched(plan);
    this.file = next;
    this.replayOnRecreated(plan);
    this.startSnapshots();
    this.persist();
    this.log.info({ changes: lines, errors: errors.length }, 'config reloaded');
    return { changes: lines, applied: true, errors };
  }

  private dropTouched(plan: readonly Change[]): void {
    const targets = plan.flatMap((c) => c.targets);
    if (targets.length === 0) return;
    for (const r of this.journal.removeWhere((r) => targets.some((t) => touches(t, r.target)))) {
      this.log.info({ method: r.method, params: r.params }, 'runtime change superseded by the reloaded config');
    }
  }

  /** Runtime static entries on ports the reload re-created went with the port: add them again. */
  private replayOnRecreated(plan: readonly Change[]): void {
    const again = recreatedPorts(plan);
    for (const r of this.journal.list()) {
      if (r.method !== 'fdb.add' || typeof r.params.bridge !== 'string' || typeof r.params.port !== 'string') continue;
      if (again.get(r.params.bridge)?.has(r.params.port) === true && parseMac(String(r.params.mac)) !== null) this.replay(r);
    }
  }

  /**
   * Last state write and FDB snapshot (after any snapshot write in flight), then the lock is released. Call before
   * daemon.stop(): the snapshot needs the ports still open.
   */
  async shutdown(): Promise<void> {
    if (this.snapshotTimer !== null) clearInterval(this.snapshotTimer);
    this.snapshotTimer = null;
    const store = this.store;
    if (store !== null) {
      await store.idle();
      this.persist();
      try {
        store.writeFdbSync({ saved_at: Date.now(), bridges: this.daemon.fdbSnapshot() });
        this.snapshots++;
      } catch (err) {
        this.writeFailed(err, store.fdbPath);
      }
    }
    this.log.info({ writes: this.writes, snapshots: this.snapshots, snapshots_skipped: store?.fdbWritesSkipped ?? 0, write_errors: this.writeErrors, journal: this.journal.size }, 'state saved');
    store?.close();
  }
}
