// Privileged tests of issue 11 section 1: runtime state survives a restart. Needs root and `ip netns`; skips with the
// reason otherwise. Nothing touches the root namespace. Every port is an attach port on a veth, so the netdevs (and
// the VMs behind them) outlive the daemon, as a QEMU guest's TAP does.
//
//   vm1 eth0 198.18.0.1 ~~ veth ~~ vif1.0 (attach, config) --+
//   vm2 eth0 198.18.0.2 ~~ veth ~~ vif2.0 (attach, config) --+-- dom0: tapbridge, bridge xenbr0
//   vm3 eth0 198.18.0.3 ~~ veth ~~ vif3.0 (attach, addif at runtime) --+
//                                  vif4.0 (attach, config; delif at runtime)
//
// Checks: replay with an unchanged config (addif, delif, vlan set, fdb add, setageing come back); replay with an edited
// config (the change to what the edit touched is dropped and logged, the rest replays); save-config output passes
// check-config and a daemon started from it shows the same views; the FDB snapshot makes unicast to a VM that stayed
// silent forwarded, not flooded, also after SIGKILL (the periodic snapshot), and entries that aged out while the daemon
// was away stay out; host-stack originals survive a restart; a second daemon whose socket has the same file name has its own state.

import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { destroyLab, CLI_MAIN, Lab, canRunNetns, run, sleep, waitFor } from "./helpers.js";
import type { BridgeStats, MacEntry, ShowBridge, VlanShow } from "../support/json-shapes.js";
import { snapshotPath, statePath } from "../../src/state/store.js";

const support = canRunNetns();
if (!support.ok) console.warn(`netns tests skipped: ${support.reason}`);
const skipNote = support.ok ? "" : ` (skipped: ${support.reason})`;

const BRIDGE = "xenbr0";
const IP = { vm1: "198.18.0.1", vm2: "198.18.0.2", vm3: "198.18.0.3" };
const MAC = { vm1: "02:00:00:11:00:01", vm2: "02:00:00:11:00:02", vm3: "02:00:00:11:00:03" };
const STATIC_MAC = "02:00:00:11:00:99";

function config(lab: Lab, vif2: object = {}): object {
  return {
    control_socket: lab.socketPath,
    fdb_snapshot_interval: 1,
    bridges: [
      {
        name: BRIDGE,
        ports: [
          { name: "vif1.0", kind: "attach" },
          { name: "vif2.0", kind: "attach", ...vif2 },
          { name: "vif4.0", kind: "attach" },
        ],
      },
    ],
  };
}

/** The views a restart must reproduce; ifindex too (attach ports on the same netdevs). */
async function views(lab: Lab): Promise<{ show: ShowBridge[]; vlans: VlanShow[]; statics: MacEntry[] }> {
  const show = await lab.cliJson<ShowBridge[]>(["show"]);
  const vlans = await lab.cliJson<VlanShow[]>(["vlan", "show", BRIDGE]);
  const macs = await lab.cliJson<MacEntry[]>(["showmacs", BRIDGE]);
  return { show, vlans, statics: macs.filter((m) => m.static) };
}

async function cliOk(lab: Lab, args: string[]): Promise<string> {
  const r = await lab.cli(args);
  if (r.code !== 0) throw new Error(`tapbridge ${args.join(" ")} exited ${r.code}: ${r.stderr}\n${lab.daemonLog(20)}`);
  return r.stdout;
}

async function restart(lab: Lab): Promise<void> {
  const exit = await lab.stopDaemon();
  expect(exit.code, lab.daemonLog()).toBe(0);
  await lab.startDaemon("dom0");
}

describe.skipIf(!support.ok)("runtime state survives a restart" + skipNote, () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = new Lab("state");
    for (const node of ["dom0", "vm1", "vm2", "vm3"]) await lab.addNs(node);
    await lab.exec("dom0", ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1"]);
    for (const [i, vm] of [[1, "vm1"], [2, "vm2"], [3, "vm3"]] as const) {
      await lab.exec(vm, ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1"]);
      await lab.addVeth("dom0", `vif${i}.0`, vm, "eth0");
      await lab.ip("dom0", ["link", "set", "dev", `vif${i}.0`, "up"]);
      await lab.configureHost(vm, "eth0", IP[vm], undefined, MAC[vm]);
    }
    await lab.ip("dom0", ["link", "add", "vif4.0", "type", "veth", "peer", "name", "vif4.0p"]);
    await lab.ip("dom0", ["link", "set", "dev", "vif4.0", "up"]);
    lab.writeConfig(config(lab));
    await lab.startDaemon("dom0");
  }, 60_000);

  afterAll(() => destroyLab(lab));

  it("replays addif, delif, vlan set, fdb add and setageing after a restart with the same config", async () => {
    await cliOk(lab, ["addif", BRIDGE, "vif3.0", "--kind", "attach", "--access", "10"]);
    await cliOk(lab, ["vlan", "set", BRIDGE, "vif2.0", "--access", "10"]);
    await cliOk(lab, ["delif", BRIDGE, "vif4.0"]);
    await cliOk(lab, ["fdb", "add", BRIDGE, STATIC_MAC, "vif3.0"]);
    await cliOk(lab, ["setageing", BRIDGE, "120"]);
    const before = await views(lab);
    expect(before.statics).toEqual([{ port: "vif3.0", mac: STATIC_MAC, vlan: 10, static: true, age: 0 }]);
    const file = statePath(lab.stateDir, lab.socketPath);
    const doc = JSON.parse(readFileSync(file, "utf8")) as { version: number; runtime: { method: string }[] };
    expect(doc.version).toBe(1);
    expect(doc.runtime.map((r) => r.method)).toEqual(["addif", "vlan.set", "delif", "fdb.add", "setageing"]);

    await restart(lab);
    expect(await views(lab)).toEqual(before);
    const saved = parse(await cliOk(lab, ["save-config"])) as { bridges: { ageing_time: number }[] };
    expect(saved.bridges[0].ageing_time).toBe(120);
    // vm2 and vm3 share VLAN 10 again
    expect((await lab.pingUntil("vm2", IP.vm3, 5_000)).ok, lab.daemonLog()).toBe(true);
  }, 60_000);

  it("with an edited config, drops (and logs) the runtime change to what the edit touched and replays the rest", async () => {
    // the file now puts vif2.0 into VLAN 20: the runtime `vlan set vif2.0 --access 10` is superseded
    lab.writeConfig(config(lab, { vlan: 20 }));
    await restart(lab);
    const v = await views(lab);
    expect(v.vlans.find((p) => p.port === "vif2.0")).toMatchObject({ mode: "access", vlans: [20] });
    expect(v.vlans.find((p) => p.port === "vif3.0")).toMatchObject({ mode: "access", vlans: [10] });
    expect(v.show[0].ports.map((p) => p.name).sort()).toEqual(["vif1.0", "vif2.0", "vif3.0"]);
    expect(v.statics.map((m) => m.mac)).toEqual([STATIC_MAC]);
    expect(lab.daemonLog(200)).toMatch(/runtime change dropped: the config edit touched what it changed/);
    expect(lab.daemonLog(200)).toMatch(/"method":"vlan.set"/);
  }, 60_000);

  it("save-config writes YAML that check-config accepts and a daemon started from it shows the same views", async () => {
    await cliOk(lab, ["vlan", "set", BRIDGE, "vif1.0", "--trunk", "10,20-22", "--native", "10"]);
    const before = await views(lab);
    const out = join(lab.dir, "saved.yaml");
    await cliOk(lab, ["save-config", out]);
    const check = await run(process.execPath, [CLI_MAIN, "check-config", out], { check: false });
    expect(check.code, check.stderr).toBe(0);
    // the saved file is the whole truth: start from it with an empty state_dir
    const saved = parse(readFileSync(out, "utf8")) as Record<string, unknown>;
    saved.state_dir = join(lab.dir, "state-fresh");
    await lab.stopDaemon();
    lab.writeConfig(JSON.stringify(saved));
    await lab.startDaemon("dom0");
    expect(await views(lab)).toEqual(before);
  }, 60_000);

  it("restores the FDB snapshot: unicast to a VM that stayed silent is forwarded, not flooded", async () => {
    // vm1 (native VLAN 10 on its trunk) and vm2 (VLAN 20 from the file) share no VLAN: put vm2 into 10
    await cliOk(lab, ["vlan", "set", BRIDGE, "vif2.0", "--access", "10"]);
    // no ARP after the restart: permanent neighbours, so the first frame vm1 sends is a unicast to vm2
    await lab.ip("vm1", ["neigh", "replace", IP.vm2, "lladdr", MAC.vm2, "dev", "eth0", "nud", "permanent"]);
    await lab.ip("vm2", ["neigh", "replace", IP.vm1, "lladdr", MAC.vm1, "dev", "eth0", "nud", "permanent"]);
    expect((await lab.ping("vm1", IP.vm2, 2, { intervalS: 0.2 })).ok, lab.daemonLog()).toBe(true);
    const learned = await lab.cliJson<MacEntry[]>(["showmacs", BRIDGE]);
    expect(learned.find((m) => m.mac === MAC.vm2 && !m.static)).toMatchObject({ port: "vif2.0", vlan: 10 });

    await restart(lab);
    const restored = await lab.cliJson<MacEntry[]>(["showmacs", BRIDGE]);
    const e = restored.find((m) => m.mac === MAC.vm2 && !m.static);
    expect(e, JSON.stringify(restored)).toMatchObject({ port: "vif2.0", vlan: 10, static: false });
    expect(e!.age).toBeGreaterThan(0);
    expect(lab.daemonLog(200)).toMatch(/FDB snapshot restored/);
    // vm2 has said nothing since the restart: vm1's ping to it must find it in the FDB
    const r = await lab.ping("vm1", IP.vm2, 1);
    expect(r.ok, r.output).toBe(true);
    const stats = await lab.cliJson<BridgeStats[]>(["stats"]);
    expect(stats[0].fdb.flooded).toBe(0);
  }, 60_000);

  it("after SIGKILL, the FDB comes from the last periodic snapshot (fdb_snapshot_interval 1 s here)", async () => {
    expect((await lab.ping("vm1", IP.vm2, 2, { intervalS: 0.2 })).ok).toBe(true);
    // the daemon runs from save-config's output now, with its own state_dir
    const stateDir = (parse(readFileSync(lab.configPath, "utf8")) as { state_dir: string }).state_dir;
    const file = snapshotPath(stateDir, lab.socketPath);
    // a periodic snapshot taken after this point (saved_at is wall-clock ms)
    const t0 = Date.now();
    const snapshotHas = (): boolean => {
      const fdb = JSON.parse(readFileSync(file, "utf8")) as { saved_at: number; bridges: Record<string, { mac: string }[]> };
      return fdb.saved_at > t0 && (fdb.bridges[BRIDGE] ?? []).some((e) => e.mac === MAC.vm2);
    };
    expect(await waitFor(snapshotHas, 5_000)).toBe(true);
    lab.daemon!.kill("SIGKILL");
    await lab.daemon!.exited;
    // the killed daemon left its socket file; startDaemon waits for the file to appear, so take the stale one away
    rmSync(lab.socketPath, { force: true });
    await lab.startDaemon("dom0");
    const restored = await lab.cliJson<MacEntry[]>(["showmacs", BRIDGE]);
    expect(restored.find((m) => m.mac === MAC.vm2 && !m.static), JSON.stringify(restored)).toMatchObject({ port: "vif2.0", vlan: 10 });
    expect((await lab.ping("vm1", IP.vm2, 1)).ok).toBe(true);
    expect((await lab.cliJson<BridgeStats[]>(["stats"]))[0].fdb.flooded).toBe(0);
  }, 60_000);

  it("does not restore entries that aged out while the daemon was away", async () => {
    expect((await lab.cli(["setageing", BRIDGE, "10"])).code).toBe(0);
    expect((await lab.ping("vm1", IP.vm2, 1)).ok).toBe(true);
    expect((await lab.cliJson<MacEntry[]>(["showmacs", BRIDGE])).some((m) => m.mac === MAC.vm2 && !m.static)).toBe(true);
    expect((await lab.stopDaemon()).code).toBe(0);
    await sleep(10_500);
    await lab.startDaemon("dom0");
    const macs = await lab.cliJson<MacEntry[]>(["showmacs", BRIDGE]);
    expect(macs.filter((m) => !m.static), JSON.stringify(macs)).toEqual([]);
    expect(lab.daemonLog(200)).toMatch(/"restored":0,"skipped":[1-9]\d*.*FDB snapshot restored/);
  }, 60_000);

  it("keeps host-stack originals across a restart: delif after it writes back the values from before the first addif", async () => {
    const sysctl = async (key: string): Promise<string> =>
      (await lab.exec("dom0", ["cat", `/proc/sys/net/ipv6/conf/hs1/${key}`])).stdout.trim();
    await lab.ip("dom0", ["link", "add", "hs1", "type", "veth", "peer", "name", "hs1p"]);
    await lab.exec("dom0", ["sysctl", "-qw", "net.ipv6.conf.hs1.accept_ra=2", "net.ipv6.conf.hs1.disable_ipv6=0"]);
    await lab.ip("dom0", ["link", "set", "dev", "hs1", "up"]);
    await cliOk(lab, ["addif", BRIDGE, "hs1", "--kind", "attach"]);
    expect([await sysctl("accept_ra"), await sysctl("disable_ipv6")]).toEqual(["0", "1"]);
    // the restarted daemon finds its own values on hs1; the originals come from the state file
    await restart(lab);
    expect((await lab.cliJson<ShowBridge[]>(["show"]))[0].ports.map((p) => p.name)).toContain("hs1");
    await cliOk(lab, ["delif", BRIDGE, "hs1"]);
    expect([await sysctl("accept_ra"), await sysctl("disable_ipv6")]).toEqual(["2", "0"]);
  }, 60_000);

  it("a second daemon with the same socket file name in another directory has its own state (issue 20), and says so", async () => {
    const dir = join(lab.dir, "second");
    mkdirSync(dir, { recursive: true });
    const cfg = join(dir, "second.yaml");
    const sock = join(dir, "tapbridge.sock");
    // another socket directory, the same socket file name and state_dir: its own state file, not the first daemon's
    const saved = parse(readFileSync(lab.configPath, "utf8")) as { state_dir: string };
    writeFileSync(cfg, JSON.stringify({ control_socket: sock, state_dir: saved.state_dir, bridges: [] }));
    const second = lab.spawn("dom0", [process.execPath, CLI_MAIN, "daemon", "--config", cfg], "second tapbridge daemon");
    try {
      expect(await waitFor(() => existsSync(sock) || !second.running, 15_000)).toBe(true);
      expect(second.running, second.stdout + second.stderr).toBe(true);
      // no runtime state of its own yet: the start-up log names the other state file(s) in state_dir
      expect(second.stdout).toMatch(/no runtime state for this control socket; state_dir holds the state of other control sockets/);
    } finally {
      await second.stop(5_000);
    }
    expect(statePath(saved.state_dir, sock)).not.toBe(statePath(saved.state_dir, lab.socketPath));
    expect(existsSync(statePath(saved.state_dir, sock))).toBe(true);
    expect(await waitFor(async () => (await lab.cli(["show", "-j"])).code === 0, 2_000)).toBe(true);
  }, 30_000);
});
