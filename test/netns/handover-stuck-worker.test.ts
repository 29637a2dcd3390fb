// A stuck data worker and the handover (native-notes/multicore.md, "A stuck worker"). Needs root and `ip netns`;
// skips with the reason otherwise. Nothing touches the root namespace.
// The test knob TAPBRIDGE_TEST_WORKER_STUCK=1 (src/dataplane/test-hooks.ts, environment only) makes worker 1 ignore
// the main thread from the first table that stops one of its reads on: it goes on reading vif2.0 with its old table.
//   - a takeover while it is stuck: the old daemon's pause is not acknowledged, so it refuses the handover (the new
//     daemon exits 1 and says why) and forwards on; without the check it handed its fds over while worker 1 still read
//   - the stuck worker is terminated after STUCK_SYNC_TIMEOUTS sync timeouts in a row (data_workers.show:
//     workers_terminated 1), logged once; its port is read by the main thread and vm1 <-> vm2 works
//   - a takeover then succeeds.
//
//   vm1, vm2 eth0 (TAPs, were vif1.0, vif2.0) 198.18.14.1-2 --- dom0: tapbridge xenbr0, data_workers 2
//   (the main thread reads vif1.0, worker 1 reads vif2.0)

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call } from "../../src/control/client.js";
import { canRunNetns, destroyLab, type Lab, waitFor } from "./helpers.js";
import { spawnTakeover, takeover, tapLab } from "./handover-helpers.js";

const support = canRunNetns();
if (!support.ok) console.warn(`netns tests skipped: ${support.reason}`);
const skipNote = support.ok ? "" : ` (skipped: ${support.reason})`;

const IP = { vm1: "198.18.14.1", vm2: "198.18.14.2" };

interface WorkerRow { id: number; alive: boolean; ports: string[]; terminated: boolean }
interface DataWorkersShow { workers_terminated: number; workers: WorkerRow[] }

describe.skipIf(!support.ok)("a stuck data worker and the handover" + skipNote, () => {
  let lab: Lab;
  const show = async (): Promise<DataWorkersShow> => (await call(lab.socketPath, "data_workers.show", {}, 20_000)) as DataWorkersShow;

  beforeAll(async () => {
    // snooping off (tapLab, with data workers): it keeps a bridge's ports on the main thread
    lab = await tapLab("hostuck", IP, { data_workers: 2 }, { TAPBRIDGE_TEST_WORKER_STUCK: "1" });
  }, 90_000);

  afterAll(() => destroyLab(lab));

  it("a takeover while worker 1 does not acknowledge the pause is refused: the new daemon exits 1 naming it, the old one forwards on", async () => {
    const before = await show();
    expect(before.workers[1].ports).toEqual(["vif2.0"]);
    const bg = spawnTakeover(lab);
    // it exits, or (without the check) it takes over and the old daemon exits
    await waitFor(() => !bg.running || !lab.daemon!.running, 30_000, 50);
    const out = bg.stdout + bg.stderr;
    if (bg.running) await bg.stop(3_000);
    expect(lab.daemon!.running, `the old daemon exited: the handover went ahead while worker 1 still read\n${out.slice(-2000)}`).toBe(true);
    expect(bg.exitCode, out.slice(-2000)).toBe(1);
    expect(out).toMatch(/data worker 1 of this daemon did not acknowledge the I\/O pause/);
    const r = await lab.pingUntil("vm1", IP.vm2, 10_000);
    expect(r.ok, `${r.output}\n${lab.daemonLog()}`).toBe(true);
  }, 60_000);

  it("the stuck worker is terminated after several sync timeouts, logged once; the main thread reads its port", async () => {
    // data_workers.show fails with data_plane_timeout while the worker is late
    let s: DataWorkersShow | null = null;
    const ok = await waitFor(async () => {
      try {
        s = await show();
        return s.workers_terminated === 1;
      } catch {
        return false;
      }
    }, 30_000, 250);
    expect(ok, `${JSON.stringify(s)}\n${lab.daemonLog()}`).toBe(true);
    expect(s!.workers[1]).toMatchObject({ id: 1, alive: false, terminated: true, ports: [] });
    expect(s!.workers[0].ports.sort()).toEqual(["vif1.0", "vif2.0"]);
    const log = lab.daemon!.stdout + lab.daemon!.stderr;
    expect(log.split("\n").filter((l) => l.includes("data worker stuck"))).toHaveLength(1);
    const r = await lab.pingUntil("vm1", IP.vm2, 10_000);
    expect(r.ok, `${r.output}\n${lab.daemonLog()}`).toBe(true);
  }, 60_000);

  it("a takeover then succeeds, and the new daemon forwards", async () => {
    const t = await takeover(lab);
    expect(t.oldExit.code).toBe(0);
    const r = await lab.pingUntil("vm1", IP.vm2, 10_000);
    expect(r.ok, `${r.output}\n${lab.daemonLog()}`).toBe(true);
  }, 60_000);
});
