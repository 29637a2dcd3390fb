// `tapbridge daemon`: load the config, open every port, then (and only then) create the control
// socket; on SIGTERM/SIGINT close the ports (TAPs the daemon created vanish unless persist), remove
// the socket and exit 0. Exit 2 for a bad config, 1 for any other start-up failure.
// Under systemd (Type=notify): READY=1 once the control socket (and the metrics endpoint, when configured) accepts
// requests, STATUS= and WATCHDOG=1 while running, STOPPING=1 on SIGTERM (src/service/).

import { ConfigError, loadConfig } from '../config/config.js';
import { createLogger, setLogLevel, type LogFormat, type LogLevel } from '../log.js';
import { SdNotify } from '../service/sd-notify.js';
import { ServiceLifecycle } from '../service/lifecycle.js';
import { DaemonMetrics } from '../metrics/metrics.js';
import { MetricsServer } from '../metrics/server.js';
import { ControlServer } from '../control/server.js';
import { daemonMethods } from '../control/methods.js';
import { VERSION } from '../version.js';
import { Daemon } from './daemon.js';

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
  const daemon = new Daemon(config, log);
  const control = new ControlServer(config.controlSocket, daemonMethods(daemon), log.child({ subsystem: 'control' }),
    { maxClients: config.controlMaxClients });
  const notify = SdNotify.fromEnv();
  const service = notify === null ? null : new ServiceLifecycle(notify, daemon, log.child({ subsystem: 'service' }));
  const metrics = config.metrics === undefined || config.metrics === null ? null
    : new MetricsServer(config.metrics.listen, new DaemonMetrics(daemon), log.child({ subsystem: 'metrics' }));
  let controlUp = false;
  try {
    await control.prepare();
    daemon.start();
    await control.listen();
    controlUp = true;
    await metrics?.listen();
  } catch (err) {
    log.error({ err }, 'start-up failed');
    process.stderr.write(`tapbridge: start-up failed: ${(err as Error).message}\n`);
    daemon.stop();
    // only our own socket: after a SocketInUseError the file belongs to the other daemon
    if (controlUp) await control.close().catch(() => undefined);
    return 1;
  }
  service?.ready();
  log.info({ version: VERSION, socket: config.controlSocket, bridges: config.bridges.map((b) => b.name) }, 'daemon ready');
  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down');
      service?.stopping();
      daemon.stop();
      void metrics?.close();
      control.close().then(() => {
        log.info('stopped');
        resolve(0);
      }, () => resolve(0));
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}
