// The shared FDB under a real race (src/fdb/fdb.ts, "Shared"; src/dataplane/fdb-view.ts): the writer (this thread,
// the Fdb from src/) learns, moves and deletes MACs of a small table as fast as it can, so that entries are removed
// and reused all the time, while reader threads (worker_threads running WorkerFdb from dist/: `npm run build` first,
// as test/unit/direct-poll.test.ts) look MACs up in receive batches (their batch counters bracket each batch, as
// worker.ts does). Every MAC i only ever lives on one of two ports; a hit on any other port is a lookup that read
// another MAC's entry: a misdelivered frame. None may happen.
//
// What this can catch: reuse of an entry while a reader may still compare its key (seen: with release() returning
// entries to the free list at once, 2 readers, 3 s, this machine: 5 to 13 misdelivered lookups in each of 3 runs).
// What it cannot: the fence in release() alone (the store-buffering window on x86 is the few nanoseconds a store waits
// in the store buffer, and the reader would have to enter its batch and load the old bucket inside it); the unit test
// in dataplane.test.ts checks its place instead. No figure is asserted beyond "entries were reused".

import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { Fdb } from '../../src/fdb/fdb.js';

const READERS = 2;
const RUN_MS = 3000;
/** MACs in play: three times the table, so that learning evicts and reuses entries all the time */
const MACS = 200;
const MAX_ENTRIES = 64;
const MAC_HI16 = 0x0016;
const macLo = (i: number): number => Math.imul(i, 2654435761) | 0;
const portA = (i: number): number => (i % 31) + 1;
const portB = (i: number): number => (i % 31) + 32;

const READER_SRC = `
const { parentPort, workerData } = require('node:worker_threads');
const { pathToFileURL } = require('node:url');
(async () => {
  const { WorkerFdb } = await import(pathToFileURL(workerData.dist + '/dataplane/fdb-view.js').href);
  const { LearnRing } = await import(pathToFileURL(workerData.dist + '/dataplane/learn-ring.js').href);
  const view = new WorkerFdb(workerData.layout, new LearnRing(8), 64);
  const readers = new Int32Array(workerData.readers);
  const stop = new Int32Array(workerData.stop);
  const idx = workerData.idx;
  let lookups = 0, hits = 0, bad = 0, seed = idx * 7919 + 1;
  const wrong = [];
  parentPort.postMessage({ ready: true });
  while (Atomics.load(stop, 0) === 0) {
    Atomics.add(readers, idx, 1);
    for (let j = 0; j < 8; j++) {
      seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
      const i = (seed >>> 0) % ${MACS};
      const p = view.lookupHL(1, ${MAC_HI16}, Math.imul(i, 2654435761) | 0);
      lookups++;
      if (p < 0) continue;
      hits++;
      if (p !== (i % 31) + 1 && p !== (i % 31) + 32) {
        bad++;
        if (wrong.length < 5) wrong.push({ mac: i, port: p });
      }
    }
    Atomics.add(readers, idx, 1);
  }
  parentPort.postMessage({ lookups, hits, bad, wrong });
})().catch((err) => parentPort.postMessage({ error: String(err && err.stack || err) }));`;

interface ReaderResult { lookups: number; hits: number; bad: number; wrong: Array<{ mac: number; port: number }>; error?: string }

describe('shared FDB: lookups racing the writer', () => {
  it(`no lookup returns another MAC's port while ${READERS} reader threads race learns, moves, deletes and reuse for ${RUN_MS} ms`, async () => {
    const fdb = new Fdb({ maxEntries: MAX_ENTRIES, maxPorts: 64, ageingTimeMs: 0, shared: true });
    const readers = new Int32Array(new SharedArrayBuffer(4 * READERS));
    fdb.setReaders(readers);
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const dist = join(process.cwd(), 'dist');
    // the readers run dist/, the writer src/: a dist/ older than the sources would race old readers against the new
    // writer (a pass or a failure that says nothing about the code)
    for (const [src, built] of [['src/dataplane/fdb-view.ts', 'dataplane/fdb-view.js'], ['src/fdb/fdb.ts', 'fdb/fdb.js'], ['src/dataplane/learn-ring.ts', 'dataplane/learn-ring.js']]) {
      const b = join(dist, built);
      expect(existsSync(b), `${b} is missing: npm run build`).toBe(true);
      expect(statSync(b).mtimeMs, `${b} is older than ${src}: npm run build`).toBeGreaterThanOrEqual(statSync(join(process.cwd(), src)).mtimeMs);
    }
    const workers: Worker[] = [];
    const ready: Promise<void>[] = [];
    const results: Promise<ReaderResult>[] = [];
    for (let idx = 0; idx < READERS; idx++) {
      const w = new Worker(READER_SRC, { eval: true, workerData: { dist, layout: fdb.sharedLayout(), readers: readers.buffer, stop: stop.buffer, idx } });
      workers.push(w);
      ready.push(new Promise((resolve, reject) => {
        w.once('message', (m: { ready?: boolean; error?: string }) => (m.ready === true ? resolve() : reject(new Error(m.error))));
        w.once('error', reject);
      }));
    }
    try {
      await Promise.all(ready);
      for (const w of workers) results.push(new Promise((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      }));
      const t0 = performance.now();
      let seed = 99;
      let ops = 0;
      while (performance.now() - t0 < RUN_MS) {
        for (let j = 0; j < 1000; j++, ops++) {
          seed ^= seed << 13;
          seed ^= seed >>> 17;
          seed ^= seed << 5;
          const i = (seed >>> 0) % MACS;
          if ((seed & 0x100) === 0) {
            fdb.delete(1, MAC_HI16 * 2 ** 32 + (macLo(i) >>> 0));
            continue;
          }
          const failed = fdb.counters.learnFailed;
          fdb.learnHL(1, MAC_HI16, macLo(i), (seed & 0x200) === 0 ? portA(i) : portB(i), 0);
          if (fdb.counters.learnFailed !== failed) {
            // every free entry waits for a reader still inside a batch: give it a moment (the real writer is far
            // slower than this loop)
            const before = Atomics.load(readers, 0);
            for (let s = 0; s < 2000 && Atomics.load(readers, 0) === before; s++);
          }
        }
      }
      Atomics.store(stop, 0, 1);
      const got = await Promise.all(results);
      for (const r of got) expect(r.error).toBeUndefined();
      const summary = { ops, learned: fdb.counters.learned, moved: fdb.counters.moved, evicted: fdb.counters.evicted, readers: got };
      // the race was run: entries were reused (more learned than the table holds) and the readers found MACs
      expect(fdb.counters.learned, JSON.stringify(summary)).toBeGreaterThan(MAX_ENTRIES);
      for (const r of got) expect(r.hits, JSON.stringify(summary)).toBeGreaterThan(0);
      expect(got.map((r) => r.bad), JSON.stringify(summary)).toEqual(got.map(() => 0));
      expect(fdb.checkInvariants()).toBeNull();
    } finally {
      Atomics.store(stop, 0, 1);
      await Promise.all(workers.map((w) => w.terminate()));
    }
  }, 30_000);
});
