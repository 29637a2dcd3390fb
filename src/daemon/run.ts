// `tapbridge daemon`: load the config, open every port, then (and only then) create the control
// socket; on SIGTERM/SIGINT close the ports (TAPs the daemon created vanish unless persist), remove
// the socket and exit 0. Exit 2 for a bad config, 1 for any other start-up failure.

import { ConfigError, loadConfig } from '../config/config.js';
import { createLogger } from '../log.js';
import { ControlServer } from '../control/server.js';
import { daemonMethods } from '../control/methods.js';
import { VERSION } from '../version.js';
import { Daemon } from './daemon.js';

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
  const daemon = new Daemon(config, log);
  const control = new ControlServer(config.controlSocket, daemonMethods(daemon), log.child({ subsystem: 'control' }),
    { maxClients: config.controlMaxClients });
  try {
    await control.prepare();
    daemon.start();
    await control.listen();
  } catch (err) {
    log.error({ err }, 'start-up failed');
    process.stderr.write(`tapbridge: start-up failed: ${(err as Error).message}\n`);
    daemon.stop();
    return 1;
  }
  log.info({ version: VERSION, socket: config.controlSocket, bridges: config.bridges.map((b) => b.name) }, 'daemon ready');
  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down');
      daemon.stop();
      control.close().then(() => {
        log.info('stopped');
        resolve(0);
      }, () => resolve(0));
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}
