// The data-plane wiring: with data_workers > 1 the worker threads of src/dataplane/ read some of the ports; this
// object starts them, hands them the port tables (sync, after a control request or an event that changed ports),
// forwards the clock to them each tick, folds their counters for show, and stops them. With one thread every call
// is a no-op and show() describes the main thread alone.

import { performance } from 'node:perf_hooks';
import { ControlError } from '../control/errors.js';
import { DataPlane, DataPlaneSyncError, DataPlaneTimeout, type DataPlaneShow } from '../dataplane/dataplane.js';
import type { PacketPort } from '../io/native.js';
import { ManagedPort } from './ports.js';
import type { DaemonCore } from './runtime.js';

export class Workers {
  /** data_workers > 1: the worker threads (src/dataplane/) */
  private dataPlane: DataPlane | null = null;

  constructor(private readonly d: DaemonCore) {}

  /** data_workers > 1: the worker threads that read some of the ports (src/dataplane/). */
  start(): void {
    const d = this.d;
    const dp = new DataPlane({
      count: d.config.dataWorkers,
      bridges: () => [...d.bridges.values()].map((br) => ({ name: br.cfg.name, bridge: br.bridge, hasBond: () => br.bond !== null })),
      directPoll: d.config.directPoll,
      log: d.log.child({ subsystem: 'dataplane' }),
      paused: () => d.ioPaused,
      onIoError: (bridge, port, io, errno, syscall, stopped) => {
        const mp = d.bridges.get(bridge)?.find(port);
        if (mp instanceof ManagedPort && mp.io === io) mp.ioError(errno, syscall, stopped);
      },
    });
    this.dataPlane = dp;
    const t0 = performance.now();
    dp.start(d.now());
    d.log.info({ ...dp.show(), start_ms: Math.round(performance.now() - t0) }, 'data plane on threads');
  }

  /** sync() for a control request: a worker that did not acknowledge fails the request (data_plane_timeout). */
  sync(force: boolean): void {
    try {
      this.dataPlane?.sync(force);
    } catch (err) {
      if (err instanceof DataPlaneSyncError) {
        throw new ControlError(err instanceof DataPlaneTimeout ? 'data_plane_timeout' : 'data_plane_error', err.message, { workers: err.workers });
      }
      throw err;
    }
  }

  /** A sync whose late workers are not an error (pause and resume of a handover). */
  syncBestEffort(): void {
    this.dataPlane?.syncBestEffort(false);
  }

  /** A handover's pause: waits (at most timeoutMs) until no worker may read a port; returns those that may still. */
  awaitReadsStopped(timeoutMs: number): number[] {
    return this.dataPlane?.awaitReadsStopped(timeoutMs) ?? [];
  }

  /** false while a late worker may still read `io` (it comes back at a sync after the worker acknowledged). */
  mainMayRead(io: PacketPort): boolean {
    return this.dataPlane?.mainMayRead(io) !== false;
  }

  /** The clock, learning, link events, reloads, re-opened ports and ended captures reach the workers here at the latest. */
  tick(nowMs: number): void {
    const dp = this.dataPlane;
    if (dp !== null) dp.tick(nowMs);
  }

  /** data_workers.show; syncWorkers false (metrics): the counters as last folded, no round trip */
  show(syncWorkers: boolean): DataPlaneShow {
    // a round trip first: the workers' counters are as of now
    if (syncWorkers) this.sync(true);
    return this.dataPlane?.show() ?? {
      data_workers: this.d.config.dataWorkers, epoch: 0, syncs: 0, learned_from_workers: 0, workers_terminated: 0,
      workers: [{ id: 0, alive: true, ports: [...this.d.byName.keys()], batches: 0, frames: 0, learn_pushed: 0, learn_dropped: 0, sync_timeouts: 0, terminated: false,
        punt_pushed: 0, punt_dropped: 0 }],
    };
  }

  /** The workers close their fds (synchronously) and end; every port is the main thread's again. */
  stop(): void {
    if (this.dataPlane !== null) void this.dataPlane.stop();
    this.dataPlane = null;
  }

  /** After a handover: the workers are handed to the caller to stop (their fds are dups); null with one thread. */
  detach(): DataPlane | null {
    const dp = this.dataPlane;
    this.dataPlane = null;
    return dp;
  }
}
