// `tapbridge daemon`: load the config, take the state file lock (src/state/), open every port, replay
// the runtime state and restore the FDB snapshot, then (and only then) create the control socket; on
// SIGHUP reload the config; on SIGTERM/SIGINT save the state and FDB snapshot, close the ports (TAPs
// the daemon created vanish unless persist or held by systemd's fd store), remove the socket and exit
// 0. Exit 2 for a bad config, 1 for any other start-up failure (another daemon on the socket or the
// state file, a TAP that cannot be created, ...).
// Under systemd (Type=notify): READY=1 once the control socket (and the metrics endpoint, when configured) accepts
// requests, STATUS= and WATCHDOG=1 while running, STOPPING=1 on SIGTERM (src/service/); every TAP fd goes into the
// fd store and comes back as LISTEN_FDS at the next start (src/handover/fdstore.ts).
//
// `--takeover`: take the fds and state of the daemon running on the control socket instead
// (src/handover/): its ports are adopted, not opened, its state file lock and listening socket are
// inherited, and the state is replayed, all without reading a port; then the old daemon is asked to
// stop and, once its pid is gone, this one reads, accepts control connections and writes the state
// file (two phases: the two never read at once). A running daemon hands over the same way when asked,
// then stops its threads and exits 0 without deleting or unlinking anything; a SIGTERM that arrives
// while it hands over waits for the outcome (ignored once committed, a normal stop if it resumes).
//
// Signals (src/service/signals.ts) are handled from the start: a SIGHUP during start-up queues one
// reload, run once the daemon is ready; a SIGTERM/SIGINT during start-up refuses a takeover not yet
// committed (the old daemon keeps forwarding), otherwise it stops the daemon as soon as it is ready.

import { ConfigError, loadConfig } from '../config/config.js';
import { createLogger, setLogLevel, type LogFormat, type LogLevel } from '../log.js';
import { SdNotify } from '../service/sd-notify.js';
import { ServiceLifecycle } from '../service/lifecycle.js';
import { DaemonMetrics } from '../metrics/metrics.js';
import { MetricsServer } from '../metrics/server.js';
import { ControlServer, type MethodHandler } from '../control/server.js';
import { daemonMethods } from '../control/methods.js';
import { VERSION } from '../version.js';
import { Daemon } from './daemon.js';
import { Takeover } from '../handover/takeover.js';
import { serveHandover } from '../handover/serve.js';
import { inheritedFds } from '../handover/inherited.js';
import { FdStore, takeListenFds } from '../handover/fdstore.js';
import { StateStore } from '../state/store.js';
import { DaemonState } from '../state/daemon-state.js';
import { getSection, parseState, serializeState } from '../state/document.js';
import { BOND_STATE_SECTION } from './bond.js';
import { MOVED_TAPS_SECTION, MovedTaps } from '../handover/moved.js';
import { createdVxlans, VXLAN_CREATED_SECTION } from './vxlan-owner.js';
import { DaemonSignals, type StopSignal } from '../service/signals.js';
import { takeoverTestDelay } from '../handover/test-hooks.js';

export interface RunOptions {
  /** --log-level: wins over the config's log_level */
  logLevel?: LogLevel;
  /** --log-format: json or pretty (default: pretty on a TTY, else json) */
  logFormat?: LogFormat;
  /** `--takeover`: take the running daemon's fds and state over its control socket. */
  takeover?: boolean;
  /** Signal handlers installed by the caller before it loaded this module (else installed here, first thing). */
  signals?: DaemonSignals;
}

export async function runDaemon(configPath: string, socketOverride?: string, opts: RunOptions = {}): Promise<number> {
  const signals = opts.signals ?? new DaemonSignals();
  const log = createLogger({ level: opts.logLevel, format: opts.logFormat });
  let config;
  try {
    config = loadConfig(configPath);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      log.error({ issues: err.issues, config: configPath }, 'bad configuration');
      return 2;
    }
    throw err;
  }
  if (socketOverride !== undefined) config.controlSocket = socketOverride;
  if (opts.logLevel === undefined && config.logLevel !== undefined && config.logLevel !== null) setLogLevel(config.logLevel);
  if (process.getuid !== undefined && process.getuid() !== 0) {
    log.warn({ uid: process.getuid() }, 'not running as root: creating TAPs and AF_PACKET sockets needs CAP_NET_ADMIN and CAP_NET_RAW');
  }
  // an invariant breach after an exception in a callback (guard.ts): ports closed, control socket removed, exit 70
  const onFatal = (): void => {
    daemon.stop();
    const exit = (): never => process.exit(70);
    setTimeout(exit, 2_000).unref();
    control.close().then(exit, exit);
  };
  const daemon = new Daemon(config, log, onFatal);
  const methods = daemonMethods(daemon);
  const notify = SdNotify.fromEnv();
  const service = notify === null ? null : new ServiceLifecycle(notify, daemon, log.child({ subsystem: 'service' }));
  const metrics = config.metrics === undefined || config.metrics === null ? null
    : new MetricsServer(config.metrics.listen, new DaemonMetrics(daemon), log.child({ subsystem: 'metrics' }));
  // systemd's fd store: TAPs from the last run come back as LISTEN_FDS, every TAP opened is stored
  const fdLog = log.child({ subsystem: 'fdstore' });
  const fdStore = notify === null ? null : new FdStore(notify, fdLog);
  if (opts.takeover !== true) takeListenFds(process.env, process.pid, fdLog);
  daemon.setTapFdListener(fdStore);
  const hlog = log.child({ subsystem: 'handover' });
  // where persistent TAPs moved (found again after a SIGKILL), kept in the state document
  const moved = new MovedTaps(hlog);
  daemon.setTapMoveListener(moved);
  // filled with the recording methods once the state file is locked (src/state/daemon-state.ts)
  const served = new Map<string, MethodHandler>();
  const control = new ControlServer(config.controlSocket, served, log.child({ subsystem: 'control' }),
    { maxClients: config.controlMaxClients });
  let store: StateStore | null = null;
  let state: DaemonState | null = null;
  let controlUp = false;
  let takeover: Takeover | null = null;
  /** takeover: the old daemon answered "stopping" and is gone; from here this daemon reads, accepts and writes */
  let takenOver = false;
  try {
    if (opts.takeover === true) {
      takeover = Takeover.receive(config.controlSocket, hlog);
      const doc = parseState(takeover.payload.state);
      if ('error' in doc) throw new Error(`the handed-over state does not check out: ${doc.error}`);
      // the old daemon's flock travels with its fd: the state file stays locked throughout (another state_dir or
      // socket: the new one is created and locked, the old lock goes with the old daemon)
      store = StateStore.forTakeover(config.stateDir, config.controlSocket, takeover.stateLockFd);
      state = new DaemonState(daemon, store, config, configPath, log, socketOverride);
      for (const [name, handler] of state.wrap(methods)) served.set(name, handler);
      state.load(doc.doc);
      moved.load(getSection(doc.doc, MOVED_TAPS_SECTION));
      // a TAP moved while the old daemon still runs is recorded, and written once this daemon took over
      trackMoves(moved, state, () => takenOver);
      const vxlans = trackCreatedVxlans(getSection(doc.doc, VXLAN_CREATED_SECTION), state, log);
      // the bonds' LACP and SLB state: the members are used at once, the partner sees no churn
      daemon.setBondRestore(getSection(doc.doc, BOND_STATE_SECTION));
      // phase 1: adopt and replay without reading: every port opened here is paused before the event loop turns
      // (this block is synchronous), the workers get no port to read while I/O is paused
      daemon.pauseIo();
      daemon.start();
      state.restore(methods, { write: false });
      daemon.pauseIo();
      inheritedFds.closeUnused();
      await takeoverTestDelay(hlog);
      // a few turns of the event loop: a stop signal that arrived during the synchronous steps above reaches its handler
      // (it took two turns when measured) and is seen here
      for (let turn = 0; turn < 3; turn++) await new Promise((r) => setImmediate(r));
      const sig = signals.stopRequested;
      if (sig !== null) throw new Error(`${sig} during the takeover, before the old daemon was asked to stop`);
      // phase 2: the old daemon stops and is gone before anything here reads, accepts or writes
      await takeover.commit();
      takenOver = true;
      // the vxlan record is written from now on (the old daemon, gone now, wrote the same file)
      vxlans.restored = true;
      daemon.resumeIo();
      await control.listenInherited(takeover.controlFd);
      controlUp = true;
      // the state file is written once the ports read (the fsync is no part of the forwarding gap)
      state.persist();
      hlog.info({ from_pid: takeover.payload.from.pid }, 'took over; forwarding');
      // the old daemon has exited, so its metrics port is free (retried all the same: nothing may stop the bridge now)
      if (metrics !== null) await listenMetricsAfterTakeover(metrics, hlog);
    } else {
      await control.prepare();
      // the state file lock, before any port is opened: a second daemon on the same state file stops here
      store = StateStore.open(config.stateDir, config.controlSocket);
      state = new DaemonState(daemon, store, config, configPath, log, socketOverride);
      for (const [name, handler] of state.wrap(methods)) served.set(name, handler);
      state.load();
      // persistent TAPs moved into other namespaces before a SIGKILL: open them there first
      moved.load(state.loadedSection(MOVED_TAPS_SECTION));
      if (moved.size > 0) moved.reopen();
      trackMoves(moved, state);
      const vxlans = trackCreatedVxlans(state.loadedSection(VXLAN_CREATED_SECTION), state, log);
      daemon.start();
      state.restore(methods);
      vxlans.restored = true;
      const unused = inheritedFds.closeUnused();
      fdStore?.forget(unused.flatMap((e) => (e.fdname !== undefined ? [e.fdname] : [])));
      await control.listen();
      controlUp = true;
      await metrics?.listen();
    }
  } catch (err) {
    log.error({ err }, 'start-up failed');
    process.stderr.write(`tapbridge: start-up failed: ${(err as Error).message}\n`);
    takeover?.refuse(`the new daemon could not start: ${(err as Error).message}`);
    inheritedFds.closeUnused();
    // before the commit the old daemon resumes with the same netdevs: its vxlan netdevs and fences stay
    daemon.stop({ keepShared: takeover !== null && !takenOver });
    // only our own socket: after a SocketInUseError (or a failed takeover) the file belongs to the other daemon
    if (controlUp) await control.close().catch(() => undefined);
    store?.close();
    return 1;
  }
  const st = state;
  const ctl = control;
  st.startSnapshots();
  service?.ready();
  log.info({ version: VERSION, socket: config.controlSocket, bridges: config.bridges.map((b) => b.name) }, 'daemon ready');
  return await new Promise<number>((resolve) => {
    let stopping = false;
    /** a stop signal that arrived while a handover was under way (run if it does not complete) */
    let stopDeferred: StopSignal | null = null;
    // handed over: stop the threads, then exit closing nothing (the TAPs, sockets, lock and socket file are the new daemon's)
    const handover = serveHandover({
      daemon,
      control: ctl,
      log: hlog,
      state: () => {
        st.setSection(BOND_STATE_SECTION, daemon.bondStates());
        return serializeState(st.collectState());
      },
      stateLockFd: () => (store === null ? -1 : store.lockFd),
      onHandedOver: () => {
        stopping = true;
        st.stopSnapshots();
        void metrics?.close();
        daemon.releaseAfterHandover().then(() => resolve(0), (err: unknown) => {
          hlog.error({ err }, 'stopping the data-plane threads after the handover failed');
          resolve(0);
        });
      },
      onResumed: () => {
        const sig = stopDeferred;
        stopDeferred = null;
        if (sig !== null) stop(sig);
      },
    });
    const stop = (signal: StopSignal): void => {
      if (stopping) return;
      if (handover.phase === 'sent') {
        // the fds are out: tearing down now would delete what the new daemon may be about to read
        if (stopDeferred === null) log.info({ signal }, 'stop signal during a handover: deferred until it completes or fails');
        stopDeferred ??= signal;
        return;
      }
      if (handover.phase === 'committed') return;
      stopping = true;
      log.info({ signal }, 'shutting down');
      service?.stopping();
      const finish = (): void => {
        daemon.stop();
        void metrics?.close();
        ctl.close().then(() => {
          log.info('stopped');
          resolve(0);
        }, () => resolve(0));
      };
      st.shutdown().then(finish, (err: unknown) => {
        log.error({ err }, 'saving the state failed');
        finish();
      });
    };
    if (signals.queuedReloads > 0 && signals.stopRequested === null) log.info({ sighups: signals.queuedReloads }, 'SIGHUP during start-up: reloading the config now');
    signals.serve({
      stop,
      reload: () => {
        if (stopping || handover.phase !== 'idle') {
          log.warn({ phase: handover.phase }, 'SIGHUP ignored: the daemon is handing over or stopping');
          return;
        }
        log.info({ config: configPath }, 'SIGHUP: reloading the config');
        st.reloadFromFile();
      },
    });
  });
}

/**
 * The moved-TAP records live in the state document and are written at once (a SIGKILL may follow), once mayWrite()
 * (a takeover: not before the old daemon is gone, which writes the same file).
 */
function trackMoves(moved: MovedTaps, state: DaemonState, mayWrite: () => boolean = () => true): void {
  state.setSection(MOVED_TAPS_SECTION, moved.list());
  moved.onChange = () => {
    state.setSection(MOVED_TAPS_SECTION, moved.list());
    if (mayWrite()) state.persist();
  };
}

/**
 * The vxlan netdevs the daemon created (src/daemon/vxlan-owner.ts) live in the state document. A change is written at
 * once, but only after the state was restored: an earlier write would replace the stored journal with an empty one.
 */
function trackCreatedVxlans(section: unknown, state: DaemonState, log: ReturnType<typeof createLogger>): { restored: boolean } {
  const track = { restored: false };
  createdVxlans.setLogger(log.child({ subsystem: 'vxlan' }));
  createdVxlans.load(section);
  state.setSection(VXLAN_CREATED_SECTION, createdVxlans.list());
  createdVxlans.onChange = () => {
    state.setSection(VXLAN_CREATED_SECTION, createdVxlans.list());
    if (track.restored) state.persist();
  };
  return track;
}

/** metrics.listen() with retries while the old daemon exits (EADDRINUSE); a failure is logged, not fatal. */
async function listenMetricsAfterTakeover(metrics: MetricsServer, log: ReturnType<typeof createLogger>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await metrics.listen();
      return;
    } catch (err) {
      if (attempt >= 20) {
        log.error({ err }, 'metrics endpoint unavailable after the takeover');
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
