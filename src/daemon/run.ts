// `tapbridge daemon`: load the config, take the state file lock (src/state/), open every port, replay
// the runtime state and restore the FDB snapshot, then (and only then) create the control socket; on
// SIGHUP reload the config; on SIGTERM/SIGINT save the state and FDB snapshot, close the ports (TAPs
// the daemon created vanish unless persist), remove the socket and exit 0. Exit 2 for a bad config,
// 1 for any other start-up failure (another daemon on the socket or the state file, a TAP that
// cannot be created, ...).

import { ConfigError, loadConfig } from '../config/config.js';
import { createLogger } from '../log.js';
import { ControlServer, type MethodHandler } from '../control/server.js';
import { daemonMethods } from '../control/methods.js';
import { VERSION } from '../version.js';
import { Daemon } from './daemon.js';
import { StateStore } from '../state/store.js';
import { DaemonState } from '../state/daemon-state.js';

export async function runDaemon(configPath: string, socketOverride?: string): Promise<number> {
  const log = createLogger();
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
  let store: StateStore | null = null;
  let state: DaemonState | null = null;
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
  } catch (err) {
    log.error({ err }, 'start-up failed');
    process.stderr.write(`tapbridge: start-up failed: ${(err as Error).message}\n`);
    daemon.stop();
    store?.close();
    return 1;
  }
  const st = state;
  const ctl = control;
  st.startSnapshots();
  log.info({ version: VERSION, socket: config.controlSocket, bridges: config.bridges.map((b) => b.name) }, 'daemon ready');
  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down');
      const finish = (): void => {
        daemon.stop();
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
