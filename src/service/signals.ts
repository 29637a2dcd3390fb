// The daemon's process signals, from its first moment: SIGHUP (reload the config) and SIGTERM/SIGINT (stop).
//
// Node's default for a signal without a handler kills the process (SIGHUP: exit 129, no log line, TAPs gone), so
// `tapbridge daemon` installs these handlers before it loads the rest of the daemon, opens a TAP or takes anything
// over. Until serve() is called (start-up), signals are only recorded:
//   - any number of SIGHUPs queue one reload, run once by serve();
//   - the first SIGTERM/SIGINT queues a stop, run by serve() instead of the queued reload; `stopRequested` lets a
//     start-up step give up early (a takeover not yet committed is refused, so the old daemon keeps forwarding).
// From serve() on, each signal calls its handler at once; a second stop signal is passed on too (the handler decides).
// Bounds: one pending reload flag, one pending stop; nothing else is kept.

export type StopSignal = 'SIGTERM' | 'SIGINT';

export interface SignalHandlers {
  reload(): void;
  stop(signal: StopSignal): void;
}

export class DaemonSignals {
  private handlers: SignalHandlers | null = null;
  private reloadQueued = false;
  private stopQueued: StopSignal | null = null;
  /** SIGHUPs that arrived during start-up (all folded into one reload) */
  queuedReloads = 0;
  private readonly listeners: Array<[NodeJS.Signals, () => void]> = [];

  /** Installs the handlers at once. */
  constructor(private readonly proc: Pick<NodeJS.Process, 'on' | 'off'> = process) {
    this.listen('SIGHUP', () => this.onReload());
    this.listen('SIGTERM', () => this.onStop('SIGTERM'));
    this.listen('SIGINT', () => this.onStop('SIGINT'));
  }

  private listen(signal: NodeJS.Signals, fn: () => void): void {
    this.proc.on(signal, fn);
    this.listeners.push([signal, fn]);
  }

  private onReload(): void {
    if (this.handlers !== null) {
      this.handlers.reload();
      return;
    }
    this.reloadQueued = true;
    this.queuedReloads++;
  }

  private onStop(signal: StopSignal): void {
    if (this.handlers !== null) {
      this.handlers.stop(signal);
      return;
    }
    this.stopQueued ??= signal;
  }

  /** A stop signal arrived during start-up (serve() not called yet). */
  get stopRequested(): StopSignal | null {
    return this.stopQueued;
  }

  /** Start-up is over: runs what was queued (a stop wins over a reload), then dispatches each signal as it comes. */
  serve(handlers: SignalHandlers): void {
    this.handlers = handlers;
    const stop = this.stopQueued;
    const reload = this.reloadQueued;
    this.stopQueued = null;
    this.reloadQueued = false;
    if (stop !== null) handlers.stop(stop);
    else if (reload) handlers.reload();
  }

  /** Removes the handlers (tests; a process that ends keeps them). */
  dispose(): void {
    for (const [signal, fn] of this.listeners.splice(0)) this.proc.off(signal, fn);
    this.handlers = null;
  }
}
