// `tapbridge daemon`: load the config, take the state file lock (src/state/), open every port, replay
// the runtime state and restore the FDB snapshot, then (and only then) create the control socket; on
// SIGHUP reload the config; on SIGTERM/SIGINT save the state and FDB snapshot, close the ports (TAPs
// the daemon created vanish unless persist), remove the socket and exit 0. Exit 2 for a bad config,
// 1 for any other start-up failure (another daemon on the socket or the state file, a TAP that
// cannot be created, the metrics address taken, ...).
// Under systemd (Type=notify): READY=1 once the control socket (and the metrics endpoint, when configured) accepts
// requests, STATUS= and WATCHDOG=1 while running, STOPPING=1 on SIGTERM (src/service/).

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
import { StateStore } from '../state/store.js';
import { DaemonState } from '../state/daemon-state.js';

export interface RunOptions {
  /** --log-level: wins over the config's log_level */
  logLevel?: LogLevel;
  /** --log-format: json or pretty (default: pretty on a TTY, else json) */
  logFormat?: LogFormat;
}

export async function runDaemon(configPath: string, socketOverride?: string, opts: RunOptions = {}): Promise<number> {
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
  // filled with the recording methods once the state file is locked (src/state/daemon-state.ts)
  const served = new Map<string, MethodHandler>();
  const control = new ControlServer(config.controlSocket, served, log.child({ subsystem: 'control' }),
    { maxClients: config.controlMaxClients });
  const notify = SdNotify.fromEnv();
  const service = notify === null ? null : new ServiceLifecycle(notify, daemon, log.child({ subsystem: 'service' }));
  const metrics = config.metrics === undefined || config.metrics === null ? null
    : new MetricsServer(config.metrics.listen, new DaemonMetrics(daemon), log.child({ subsystem: 'metrics' }));
  let store: StateStore | null = null;
  let state: DaemonState | null = null;
  let controlUp = false;
  try {
    await control.prepare();
    // the state file lock, before any port is opened: a second daemon on the same state file stops here
    store = StateStore.open(config.stateDir, config.controlSocket);
    state = new DaemonState(daemon, store, config, configPath, log, socketOverride);
    for (const [name, handler] of state.wrap(methods)) served.set(name, handler);
    state.load();
    daemon.start();
    state.restore(methods);
    await control.listen();
    controlUp = true;
    await metrics?.listen();
  } catch (err) {
    log.error({ err }, 'start-up failed');
    process.stderr.write(`tapbridge: start-up failed: ${(err as Error).message}\n`);
    daemon.stop();
    // only our own socket: after a SocketInUseError the file belongs to the other daemon
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
    const stop = (signal: string): void => {
      if (stopping) return;
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
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      log.info({ config: configPath }, 'SIGHUP: reloading the config');
      st.reloadFromFile();
    });
  });
}
