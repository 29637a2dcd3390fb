// `debug.gc`: a forced full garbage collection and the process's memory and fd figures after it,
// so tests and probes can tell growth from garbage ("flat" = same fd count, RSS growth under
// 20 MB after a forced GC). Only root reaches the control socket (mode 0600); a GC costs a pause
// of milliseconds and changes no state. Works without --expose-gc: the flag is set at run time and
// gc() taken from a fresh context, once.

import { readdirSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface GcResult {
  rss_bytes: number;
  heap_used_bytes: number;
  external_bytes: number;
  array_buffers_bytes: number;
  open_fds: number;
}

let gcFn: (() => void) | null = null;

function collector(): () => void {
  if (gcFn !== null) return gcFn;
  const exposed = (globalThis as { gc?: unknown }).gc;
  if (typeof exposed === 'function') {
    gcFn = exposed as () => void;
  } else {
    setFlagsFromString('--expose-gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  return gcFn;
}

export function forceGc(): GcResult {
  const gc = collector();
  gc();
  gc();
  const m = process.memoryUsage();
  return {
    rss_bytes: m.rss,
    heap_used_bytes: m.heapUsed,
    external_bytes: m.external,
    array_buffers_bytes: m.arrayBuffers,
    open_fds: readdirSync('/proc/self/fd').length,
  };
}
