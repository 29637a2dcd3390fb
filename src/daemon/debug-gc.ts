// `debug.gc` (only with TAPBRIDGE_EXPOSE_GC=1 in the daemon's environment): a full garbage collection on demand, so a
// test can tell a leak from garbage not collected yet ("flat" = RSS growth under 20 MB after a forced GC). The method
// takes no parameters and returns the process's memory after the collection. Never enabled by default: a client could
// otherwise make the daemon stop the world at will.

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export const EXPOSE_GC_ENV = 'TAPBRIDGE_EXPOSE_GC';

export interface GcResult {
  rss_bytes: number;
  heap_used_bytes: number;
  external_bytes: number;
}

let gcFn: (() => void) | null = null;

/** Runs a full GC (V8's gc(), exposed once through --expose-gc in a fresh context) and reports memory. */
export function forcedGc(): GcResult {
  if (gcFn === null) {
    setFlagsFromString('--expose-gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
  const m = process.memoryUsage();
  return { rss_bytes: m.rss, heap_used_bytes: m.heapUsed, external_bytes: m.external };
}
