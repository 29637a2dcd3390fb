// Privileged tests of issue 20 section 2: a change the daemon acknowledged survives a restart and a takeover, or is
// refused. Needs root, `ip netns` and a tmpfs mount (the state_dir is a 64 KiB tmpfs inside the lab's temp dir,
// unmounted on every path); skips with the reason otherwise. Nothing touches the root namespace.
//
//   vm1 eth0 ~~ veth ~~ vif1.0 (attach, config: locked to M) --+
//                                                               +-- dom0: tapbridge, bridge xenbr0
//   vm2 eth0 ~~ veth ~~ vif2.0 (attach, config: unlocked)     --+
//
// Checks: on a full state_dir `lock set` and `vlan set` exit non-zero with state_write_failed and change nothing (also
// after a restart); the lock sequence (lock clear P, lock set Q M, lock set P M2) comes back as acknowledged
// after SIGTERM + start and after --takeover; a takeover to a config with another state_dir creates and locks that
// directory and writes the state there.

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { destroyLab, Lab, canRunNetns, run } from "./helpers.js";
import { takeover } from "./handover-helpers.js";
import { statePath } from "../../src/state/store.js";
import type { VlanShow } from "../support/json-shapes.js";

function tmpfsProblem(): string | null {
  try {
    execFileSync("mount", ["-V"], { stdio: "ignore" });
    return null;
  } catch {
    return "mount is not available";
  }
}
const netns = canRunNetns();
const mountProblem = netns.ok ? tmpfsProblem() : null;
const support = !netns.ok ? netns : mountProblem !== null ? { ok: false, reason: mountProblem } : netns;
if (!support.ok) console.warn(`netns state-durability tests skipped: ${support.reason}`);
const skipNote = support.ok ? "" : ` (skipped: ${support.reason})`;

const BRIDGE = "xenbr0";
const M = "02:00:00:20:00:01";
const M2 = "02:00:00:20:00:02";
const M3 = "02:00:00:20:00:03";

interface LockShow {
  port: string;
  mode: string;
  mac: string | null;
}

describe.skipIf(!support.ok)("acknowledged runtime changes survive or are refused (issue 20 section 2)" + skipNote, () => {
  let lab: Lab;
  let mnt = "";
  let mounted = false;

  const config = (stateDir: string): object => ({
    control_socket: lab.socketPath,
    state_dir: stateDir,
    bridges: [{ name: BRIDGE, ports: [{ name: "vif1.0", kind: "attach", lock: { mac: M } }, { name: "vif2.0", kind: "attach" }] }],
  });
  const locks = async (): Promise<Record<string, string | null>> =>
    Object.fromEntries((await lab.cliJson<LockShow[]>(["lock", "show", BRIDGE])).map((l) => [l.port, l.mode === "locked" ? l.mac : l.mode]));
  const ok = async (args: string[]): Promise<void> => {
    const r = await lab.cli(args);
    expect(r.code, `tapbridge ${args.join(" ")}: ${r.stderr}\n${lab.daemonLog(20)}`).toBe(0);
  };
  const restart = async (): Promise<void> => {
    const exit = await lab.stopDaemon();
    expect(exit.code, lab.daemonLog(30)).toBe(0);
    await lab.startDaemon("dom0");
  };

  beforeAll(async () => {
    lab = new Lab("durable");
    for (const node of ["dom0", "vm1", "vm2"]) await lab.addNs(node);
    for (const [vif, vm] of [["vif1.0", "vm1"], ["vif2.0", "vm2"]] as const) {
      await lab.addVeth("dom0", vif, vm, "eth0");
      await lab.ip("dom0", ["link", "set", "dev", vif, "up"]);
      await lab.ip(vm, ["link", "set", "dev", "eth0", "up"]);
    }
    mnt = join(lab.dir, "state-small");
    mkdirSync(mnt, { mode: 0o700 });
    await run("mount", ["-t", "tmpfs", "-o", "size=64k,mode=0700", `tb-${process.pid}-state`, mnt]);
    mounted = true;
    lab.writeConfig(config(mnt));
    await lab.startDaemon("dom0");
  }, 60_000);

  afterAll(async () => {
    // the daemon holds its lock file on the mount: stop it before unmounting
    if (lab?.daemon?.running) await lab.stopDaemon();
    if (mounted) await run("umount", [mnt]).catch(() => run("umount", ["-l", mnt]));
    await destroyLab(lab);
  });

  it("on a full state_dir, lock set and vlan set exit non-zero with state_write_failed (ENOSPC) and change nothing, also after a restart", async () => {
    const before = await locks();
    const vlanBefore = await lab.cliJson<VlanShow[]>(["vlan", "show", BRIDGE]);
    const filler = join(mnt, "filler");
    try {
      writeFileSync(filler, Buffer.alloc(128 * 1024));
    } catch (err) {
      expect((err as NodeJS.ErrnoException).code).toBe("ENOSPC");
    }
    try {
      for (const args of [["lock", "set", BRIDGE, "vif2.0", "--mac", M3], ["vlan", "set", BRIDGE, "vif2.0", "--access", "7"]]) {
        const r = await lab.cli(args);
        expect(r.code, `tapbridge ${args.join(" ")} on a full disk: ${r.stdout}${r.stderr}`).not.toBe(0);
        expect(r.stderr).toMatch(/not applied: cannot write the state file .*ENOSPC.*\(state_write_failed\)/);
      }
      expect(await locks()).toEqual(before);
      expect(await lab.cliJson<VlanShow[]>(["vlan", "show", BRIDGE])).toEqual(vlanBefore);
    } finally {
      rmSync(filler, { force: true });
    }
    await restart();
    expect(await locks()).toEqual(before);
    expect(await lab.cliJson<VlanShow[]>(["vlan", "show", BRIDGE])).toEqual(vlanBefore);
  }, 60_000);

  it("config locks vif1.0 to M; lock clear vif1.0, lock set vif2.0 M, lock set vif1.0 M2: the same after SIGTERM + start and after --takeover", async () => {
    expect(await locks()).toEqual({ "vif1.0": M, "vif2.0": "unlocked" });
    await ok(["lock", "clear", BRIDGE, "vif1.0"]);
    await ok(["lock", "set", BRIDGE, "vif2.0", "--mac", M]);
    await ok(["lock", "set", BRIDGE, "vif1.0", "--mac", M2]);
    const acknowledged = { "vif1.0": M2, "vif2.0": M };
    expect(await locks()).toEqual(acknowledged);
    await restart();
    expect(await locks(), lab.daemonLog(30)).toEqual(acknowledged);
    await takeover(lab);
    expect(await locks(), lab.daemonLog(30)).toEqual(acknowledged);
  }, 90_000);

  it("a takeover to a config with another state_dir creates and locks it and writes the state there", async () => {
    const other = join(lab.dir, "state-other", "nested");
    expect(existsSync(other)).toBe(false);
    lab.writeConfig(config(other));
    await takeover(lab);
    const file = statePath(other, lab.socketPath);
    expect(existsSync(file), lab.daemonLog(30)).toBe(true);
    await ok(["setageing", BRIDGE, "120"]);
    const doc = JSON.parse(readFileSync(file, "utf8")) as { runtime: { method: string }[] };
    expect(doc.runtime.map((r) => r.method)).toContain("setageing");
    // the new directory's lock is held: flock -n on it fails while the daemon runs
    expect((await run("flock", ["-n", `${file}.lock`, "true"], { check: false })).code).not.toBe(0);
    // what was acknowledged before the takeover comes back from the new directory
    await restart();
    expect(await locks(), lab.daemonLog(30)).toEqual({ "vif1.0": M2, "vif2.0": M });
  }, 90_000);
});
