// Direct polling (src/native/directpoll.cc) without ports: with the pump installed, libuv's own work (timers,
// immediates, I/O of a socket pair, promise reactions) still runs, the pump returns for each of them, and a worker
// thread that turns it on exits cleanly (its loop must close with no handle of ours open), also when it holds the only
// instance of the addon (Node unloads it with the worker's env). Unprivileged: no TAP.
// The frame path is tested in test/netns/direct-poll.test.ts.

import { createConnection, createServer } from "node:net";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { afterAll, describe, expect, it } from "vitest";
import { directPoll, loadAddon } from "../../src/io/native.js";

describe("direct poll without ports", () => {
  afterAll(() => directPoll.set(false));

  it("rejects bad arguments with a TypeError", () => {
    const addon = loadAddon() as unknown as Record<string, (...a: unknown[]) => unknown>;
    expect(() => addon.setDirectPoll("yes")).toThrow(TypeError);
    expect(() => addon.setDirectPoll(true)).toThrow(/setDirectPoll\(on: boolean, pump/);
    expect(() => addon.setDirectPoll(true, () => undefined, new Uint8Array(2))).toThrow(/out\?: Int32Array/);
    expect(() => addon.setDirectPoll(true, () => undefined, new Int32Array(1))).toThrow(TypeError);
    // outside the pump (and while off) it returns at once: -1, never blocks
    expect(addon.directPollWait()).toBe(-1);
  });

  it("timers, immediates, socket I/O and promises run while it is on; the pump is called and returns", async () => {
    directPoll.set(true);
    const before = directPoll.stats();
    expect(before.enabled).toBe(true);
    const order: string[] = [];
    await new Promise<void>((resolve) => setTimeout(() => { order.push("timeout"); resolve(); }, 30));
    await new Promise<void>((resolve) => setImmediate(() => { order.push("immediate"); resolve(); }));
    await Promise.resolve().then(() => order.push("microtask"));
    const dir = mkdtempSync(join(tmpdir(), "tb-dpoll-"));
    try {
      const path = join(dir, "s");
      const server = createServer((c) => c.on("data", (d) => c.end(d)));
      await new Promise<void>((resolve) => server.listen(path, resolve));
      const echoed = await new Promise<string>((resolve, reject) => {
        const c = createConnection(path, () => c.write("ping"));
        let got = "";
        c.on("data", (d) => { got += d.toString(); });
        c.on("end", () => resolve(got));
        c.on("error", reject);
      });
      order.push(`echo ${echoed}`);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const after = directPoll.stats();
    expect(order).toEqual(["timeout", "immediate", "microtask", "echo ping"]);
    expect(after.pumps).toBeGreaterThan(before.pumps);
    // every pump call ends in a return to libuv; no port, so nothing is ever served
    expect(after.yields).toBeGreaterThanOrEqual(after.pumps - 1);
    expect(after.served).toBe(before.served);
  });

  it("off again: the pump is no longer called", async () => {
    directPoll.set(false);
    const a = directPoll.stats();
    expect(a.enabled).toBe(false);
    await new Promise<void>((resolve) => setTimeout(resolve, 30));
    expect(directPoll.stats().pumps).toBe(a.pumps);
  });

  it("a worker thread that turns it on runs a timer and exits with code 0", async () => {
    // The worker loads the compiled facade (npm test builds dist first), posts its stats from a timer, writes its
    // thread id into `shared` and exits. This thread blocks until that OS thread is gone, so the message and the exit
    // reach this loop in one turn, as on a loaded machine; Node then emits 'message' and 'exit' in one call
    // (Worker[kOnExit] drains the port first): the 'exit' listener must be attached before the message is awaited.
    const shared = new Int32Array(new SharedArrayBuffer(8));
    const src = `
      const { parentPort, workerData } = require('node:worker_threads');
      const path = require('node:path');
      const tid = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop());
      const dist = path.join(${JSON.stringify(process.cwd())}, 'dist', 'io', 'native.js');
      import(require('node:url').pathToFileURL(dist).href).then(({ directPoll }) => {
        directPoll.set(true);
        setTimeout(() => {
          parentPort.postMessage(directPoll.stats());
          Atomics.store(workerData, 1, tid);
          Atomics.store(workerData, 0, 1);
          Atomics.notify(workerData, 0);
        }, 20);
      });`;
    const w = new Worker(src, { eval: true, workerData: shared });
    const exited = new Promise<number>((resolve) => w.once("exit", resolve));
    const message = new Promise<{ enabled: boolean; pumps: number }>((resolve, reject) => {
      w.once("message", resolve);
      w.once("error", reject);
    });
    expect(Atomics.wait(shared, 0, 0, 60_000)).not.toBe("timed-out");
    const task = `/proc/self/task/${shared[1]}`;
    for (let i = 0; i < 6000 && existsSync(task); i++) Atomics.wait(shared, 0, 1, 10);
    expect(existsSync(task)).toBe(false);
    const msg = await message;
    expect(msg.enabled).toBe(true);
    expect(msg.pumps).toBeGreaterThan(0);
    expect(await exited).toBe(0);
  });

  it("a worker exits cleanly with it on in a process whose main thread never loaded the addon", () => {
    // The worker's addon instance is the only one, so Node unloads the addon when the worker's env goes away: the
    // prepare handle must be closed before that (an async cleanup hook), not in the worker's last loop turns (SIGSEGV).
    const dist = join(process.cwd(), "dist", "io", "native.js");
    const main = `
      const { Worker } = require('node:worker_threads');
      const w = new Worker(\`
        import(require('node:url').pathToFileURL(${JSON.stringify(dist)}).href).then(({ directPoll }) => {
          directPoll.set(true);
          setTimeout(() => require('node:worker_threads').parentPort.postMessage(directPoll.stats().enabled), 20);
        });\`, { eval: true });
      w.on('message', (m) => console.log('enabled', m));
      w.on('exit', (code) => console.log('exit', code));`;
    const r = spawnSync(process.execPath, ["-e", main], { encoding: "utf8", timeout: 60_000 });
    expect({ status: r.status, signal: r.signal, stdout: r.stdout }).toEqual({ status: 0, signal: null, stdout: "enabled true\nexit 0\n" });
  });
});
