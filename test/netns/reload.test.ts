// Privileged test of issue 11 section 3: live reload (`tapbridge reload [--config FILE] [--dry-run]`, SIGHUP). Needs
// root and `ip netns`; skips with the reason otherwise. Nothing touches the root namespace.
//
//   vm1 eth0 198.18.2.1 ~~ veth ~~ vif1.0 (attach, access 10) --+   untouched: a ping vm1 -> vm2 runs through
//   vm2 eth0 198.18.2.2 ~~ veth ~~ vif2.0 (attach, access 10) --+   every reload and must lose nothing
//   vm3 eth0 198.18.2.3 ~~ veth ~~ vif3.0 (attach, access 10) --+-- dom0: tapbridge xenbr0 --+-- peth0 ~~ veth ~~ sw0 --+
//   vm5 eth0 198.18.2.5 ~~ veth ~~ vif5.0 (added by a reload)  --+                           +-- peth1 ~~ veth ~~ sw1 --+
//                                  vif4.0 (veth, removed by a reload)                             ext: kernel bridge br0
//                                  vif6.0 (veth, a port of bridge br1, which a reload adds,      (VLAN-unaware switch),
//                                          re-creates and removes)                                eth0 198.18.2.9
//
// Each kind of setting changes in its own reload: port VLAN and learning, port added and removed, static FDB entries,
// ageing, the uplink (interface -> bond), bond options, a whole bridge; then an invalid config (rejected whole, exit
// 2, key paths), a dry run (prints, changes nothing) and SIGHUP (re-reads the file).

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { destroyLab, Lab, canRunNetns, sleep, waitFor, type Background } from "./helpers.js";
import type { BondShow, MacEntry, ShowBridge, VlanShow } from "../support/json-shapes.js";
import { statePath } from "../../src/state/store.js";

const support = canRunNetns();
if (!support.ok) console.warn(`netns tests skipped: ${support.reason}`);
const skipNote = support.ok ? "" : ` (skipped: ${support.reason})`;

const BRIDGE = "xenbr0";
const IP = { vm1: "198.18.2.1", vm2: "198.18.2.2", vm3: "198.18.2.3", vm5: "198.18.2.5", ext: "198.18.2.9" };
const MAC = { vm1: "02:00:00:22:00:01", vm2: "02:00:00:22:00:02", vm3: "02:00:00:22:00:03", vm5: "02:00:00:22:00:05" };
const STATIC_MAC = "02:00:00:22:00:77";
const RUNTIME_MAC = "02:00:00:22:00:88";

interface Settings {
  vif3: Record<string, unknown>;
  vif4: boolean;
  vif5: boolean;
  fdb: { mac: string; port: string }[];
  ageing: number;
  uplink: Record<string, unknown>;
  br1: Record<string, unknown> | null;
}

const initial: Settings = {
  vif3: { vlan: 10 },
  vif4: true,
  vif5: false,
  fdb: [],
  ageing: 300,
  uplink: { interface: "peth0", trunk: "all", native_vlan: 10 },
  br1: null,
};

function config(lab: Lab, s: Settings): object {
  const ports: object[] = [
    { name: "vif1.0", kind: "attach", vlan: 10 },
    { name: "vif2.0", kind: "attach", vlan: 10 },
    { name: "vif3.0", kind: "attach", ...s.vif3 },
  ];
  if (s.vif4) ports.push({ name: "vif4.0", kind: "attach" });
  if (s.vif5) ports.push({ name: "vif5.0", kind: "attach", vlan: 10 });
  const bridges: object[] = [{ name: BRIDGE, ageing_time: s.ageing, uplink: s.uplink, fdb: s.fdb, ports }];
  if (s.br1 !== null) bridges.push({ name: "br1", ...s.br1, ports: [{ name: "vif6.0", kind: "attach" }] });
  return { control_socket: lab.socketPath, state_dir: lab.stateDir, bridges };
}

describe.skipIf(!support.ok)("live reload" + skipNote, () => {
  let lab: Lab;
  let ping: Background;
  let settings: Settings = { ...initial };
  const newCfg = (): string => join(lab.dir, "new.yaml");

  /** Writes the settings to new.yaml and reloads with --config; returns the printed lines. */
  async function reload(next: Settings, extra: string[] = []): Promise<string[]> {
    writeFileSync(newCfg(), JSON.stringify(config(lab, next)));
    const r = await lab.cli(["reload", "--config", newCfg(), ...extra]);
    expect(r.code, `${r.stdout}\n${r.stderr}\n${lab.daemonLog(20)}`).toBe(0);
    if (!extra.includes("--dry-run")) settings = next;
    return r.stdout.trim().split("\n");
  }

  beforeAll(async () => {
    lab = new Lab("reload");
    for (const node of ["dom0", "vm1", "vm2", "vm3", "vm5", "ext"]) await lab.addNs(node);
    for (const node of ["dom0", "vm1", "vm2", "vm3", "vm5", "ext"]) {
      await lab.exec(node, ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1"]);
    }
    for (const [i, vm] of [[1, "vm1"], [2, "vm2"], [3, "vm3"], [5, "vm5"]] as const) {
      await lab.addVeth("dom0", `vif${i}.0`, vm, "eth0");
      await lab.ip("dom0", ["link", "set", "dev", `vif${i}.0`, "up"]);
      await lab.configureHost(vm, "eth0", IP[vm], undefined, MAC[vm]);
    }
    for (const v of ["vif4.0", "vif6.0"]) {
      await lab.ip("dom0", ["link", "add", v, "type", "veth", "peer", "name", `${v.slice(0, 4)}p`]);
      await lab.ip("dom0", ["link", "set", "dev", v, "up"]);
    }
    // the upstream switch: a VLAN-unaware kernel bridge in ext with both uplink veths and ext's own address on it
    await lab.ip("ext", ["link", "add", "br0", "type", "bridge", "stp_state", "0", "mcast_snooping", "0"]);
    for (const [i, peer] of [[0, "sw0"], [1, "sw1"]] as const) {
      await lab.addVeth("dom0", `peth${i}`, "ext", peer);
      await lab.ip("dom0", ["link", "set", "dev", `peth${i}`, "up"]);
      await lab.ip("ext", ["link", "set", "dev", peer, "master", "br0", "up"]);
    }
    await lab.configureHost("ext", "br0", IP.ext);
    lab.writeConfig(config(lab, initial));
    await lab.startDaemon("dom0");
    expect((await lab.pingUntil("vm1", IP.vm2, 5_000)).ok, lab.daemonLog()).toBe(true);
    // the untouched ping: 100 per second for as long as the test runs (bounded at 90 s), stopped with SIGINT
    ping = lab.spawn("vm1", ["ping", "-n", "-i", "0.01", "-c", "9000", IP.vm2], "untouched ping");
  }, 60_000);

  afterAll(() => destroyLab(lab));

  it("changes a port's VLAN and learning in place, keeping a runtime change to another port", async () => {
    expect((await lab.cli(["fdb", "add", BRIDGE, RUNTIME_MAC, "vif1.0"])).code).toBe(0);
    // a runtime change to what the edit touches: the file wins
    expect((await lab.cli(["vlan", "set", BRIDGE, "vif3.0", "--access", "30"])).code).toBe(0);
    const lines = await reload({ ...settings, vif3: { vlan: 20, learning: false } });
    expect(lines).toEqual([`~ port ${BRIDGE}/vif3.0 vlan 10 -> 20`, `~ port ${BRIDGE}/vif3.0 learning true -> false`]);
    const vlans = await lab.cliJson<VlanShow[]>(["vlan", "show", BRIDGE]);
    expect(vlans.find((v) => v.port === "vif3.0")).toMatchObject({ mode: "access", vlans: [20] });
    // learning off: what vm3 sends is not learned
    await lab.ping("vm3", "198.18.2.200", 2, { intervalS: 0.1 });
    const macs = await lab.cliJson<MacEntry[]>(["showmacs", BRIDGE]);
    expect(macs.find((m) => m.mac === MAC.vm3)).toBeUndefined();
    expect(macs.find((m) => m.mac === RUNTIME_MAC)).toMatchObject({ port: "vif1.0", static: true });
    const state = JSON.parse(readFileSync(statePath(lab.stateDir, lab.socketPath), "utf8")) as { runtime: { method: string }[] };
    expect(state.runtime.map((r) => r.method)).toEqual(["fdb.add"]);
    expect(lab.daemonLog(50)).toMatch(/runtime change superseded by the reloaded config/);
  }, 30_000);

  it("adds and removes ports", async () => {
    const lines = await reload({ ...settings, vif4: false, vif5: true });
    expect(lines).toEqual([`- port ${BRIDGE}/vif4.0`, `+ port ${BRIDGE}/vif5.0 (attach, access 10)`]);
    const show = await lab.cliJson<ShowBridge[]>(["show"]);
    expect(show[0].ports.map((p) => p.name)).toEqual(["vif1.0", "vif2.0", "vif3.0", "vif5.0"]);
    expect((await lab.pingUntil("vm5", IP.vm1, 5_000)).ok, lab.daemonLog()).toBe(true);
  }, 30_000);

  it("adds, moves and removes static FDB entries and changes the ageing time", async () => {
    let lines = await reload({ ...settings, fdb: [{ mac: STATIC_MAC, port: "vif2.0" }], ageing: 60 });
    expect(lines).toEqual([`~ bridge ${BRIDGE} ageing_time 300 -> 60`, `+ fdb ${BRIDGE} ${STATIC_MAC} vlan 10 vif2.0`]);
    let macs = await lab.cliJson<MacEntry[]>(["showmacs", BRIDGE]);
    expect(macs.find((m) => m.mac === STATIC_MAC)).toMatchObject({ port: "vif2.0", vlan: 10, static: true });
    const saved = parse((await lab.cli(["save-config", "-"])).stdout) as { bridges: { ageing_time: number }[] };
    expect(saved.bridges[0].ageing_time).toBe(60);
    lines = await reload({ ...settings, fdb: [{ mac: STATIC_MAC, port: "vif1.0" }] });
    expect(lines).toEqual([`~ fdb ${BRIDGE} ${STATIC_MAC} vlan 10 vif2.0 -> vif1.0`]);
    macs = await lab.cliJson<MacEntry[]>(["showmacs", BRIDGE]);
    expect(macs.find((m) => m.mac === STATIC_MAC)).toMatchObject({ port: "vif1.0" });
    lines = await reload({ ...settings, fdb: [] });
    expect(lines).toEqual([`- fdb ${BRIDGE} ${STATIC_MAC} vlan 10 vif1.0`]);
    macs = await lab.cliJson<MacEntry[]>(["showmacs", BRIDGE]);
    expect(macs.find((m) => m.mac === STATIC_MAC)).toBeUndefined();
  }, 30_000);

  it("replaces the uplink with a bond, then changes the bond's options", async () => {
    expect((await lab.pingUntil("ext", IP.vm1, 5_000)).ok, lab.daemonLog()).toBe(true);
    const bond = { bond: { name: "bond0", members: ["peth0", "peth1"], miimon: 100 }, trunk: "all", native_vlan: 10 };
    let lines = await reload({ ...settings, uplink: bond });
    expect(lines).toEqual([`~ uplink ${BRIDGE} peth0 -> bond0, interface -> bond`]);
    const show = await lab.cliJson<ShowBridge[]>(["show"]);
    expect(show[0].uplink).toMatchObject({ name: "bond0", kind: "bond" });
    expect((await lab.pingUntil("ext", IP.vm1, 10_000)).ok, lab.daemonLog()).toBe(true);
    lines = await reload({ ...settings, uplink: { ...bond, bond: { ...bond.bond, miimon: 250 } } });
    expect(lines).toEqual([`~ uplink ${BRIDGE} miimon 100 -> 250`]);
    const b = await lab.cliJson<BondShow>(["bond", "show", "bond0"]);
    expect(b).toMatchObject({ name: "bond0", miimon: 250 });
    expect((await lab.pingUntil("ext", IP.vm1, 10_000)).ok, lab.daemonLog()).toBe(true);
  }, 40_000);

  it("adds a bridge, re-creates it for a new fdb_max and removes it", async () => {
    let lines = await reload({ ...settings, br1: { fdb_max: 1000 } });
    expect(lines).toEqual(["+ bridge br1"]);
    let show = await lab.cliJson<ShowBridge[]>(["show"]);
    expect(show.map((b) => b.name)).toEqual([BRIDGE, "br1"]);
    expect(show[1].ports.map((p) => p.name)).toEqual(["vif6.0"]);
    lines = await reload({ ...settings, br1: { fdb_max: 2000 } });
    expect(lines).toEqual(["~ bridge br1 fdb_max 1000 -> 2000 (re-created)"]);
    lines = await reload({ ...settings, br1: null });
    expect(lines).toEqual(["- bridge br1"]);
    show = await lab.cliJson<ShowBridge[]>(["show"]);
    expect(show.map((b) => b.name)).toEqual([BRIDGE]);
  }, 30_000);

  it("rejects an invalid config whole: exit 2, key paths printed and logged, nothing changed", async () => {
    const before = await lab.cliJson<ShowBridge[]>(["show"]);
    const bad = config(lab, { ...settings, vif5: false }) as { bridges: { ports: Record<string, unknown>[] }[] };
    bad.bridges[0].ports[0].kind = "nic";
    writeFileSync(newCfg(), JSON.stringify(bad));
    const r = await lab.cli(["reload", "--config", newCfg()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bridges\[0\]\.ports\[0\]\.kind: must be "tap", "attach", "host" or "vhost-user"/);
    // the log line is written asynchronously (pino): wait for it rather than race it
    const logged = await waitFor(() => /reload rejected: invalid configuration/.test(lab.daemonLog(50)), 5_000);
    expect(logged, lab.daemonLog(50)).toBe(true);
    expect(await lab.cliJson<ShowBridge[]>(["show"])).toEqual(before);
  }, 20_000);

  it("--dry-run prints one line per planned change and changes nothing", async () => {
    const before = await lab.cliJson<VlanShow[]>(["vlan", "show", BRIDGE]);
    const lines = await reload({ ...settings, vif3: { vlan: 30, learning: false }, vif4: true, vif5: false }, ["--dry-run"]);
    expect(lines).toEqual([`- port ${BRIDGE}/vif5.0`, `~ port ${BRIDGE}/vif3.0 vlan 20 -> 30`, `+ port ${BRIDGE}/vif4.0 (attach, default)`]);
    expect(await lab.cliJson<VlanShow[]>(["vlan", "show", BRIDGE])).toEqual(before);
  }, 20_000);

  it("SIGHUP re-reads the daemon's own config file", async () => {
    lab.writeConfig(config(lab, { ...settings, ageing: 90 }));
    process.kill(lab.daemon!.pid!, "SIGHUP");
    const ok = await waitFor(async () => {
      const saved = parse((await lab.cli(["save-config"])).stdout) as { bridges: { ageing_time: number }[] };
      return saved.bridges[0].ageing_time === 90;
    }, 5_000);
    expect(ok, lab.daemonLog(20)).toBe(true);
    expect(lab.daemonLog(50)).toMatch(/config reloaded/);
  }, 20_000);

  it("the ping between untouched ports lost nothing across all the reloads", async () => {
    await sleep(200);
    ping.kill("SIGINT");
    await ping.wait(5_000);
    const m = /(\d+) packets transmitted, (\d+) received/.exec(ping.stdout);
    expect(m, ping.stdout + ping.stderr).not.toBeNull();
    const sent = Number(m![1]);
    const received = Number(m![2]);
    console.log(`untouched ping vm1 -> vm2 across the reloads: ${sent} sent, ${received} received`);
    expect(sent).toBeGreaterThan(100);
    // A reload that lost a frame leaves a gap in the replies' sequence numbers. The SIGINT above may also catch the
    // last one or two requests in flight (their replies not back yet on a loaded machine): those are no loss.
    const seqs = new Set([...ping.stdout.matchAll(/icmp_seq=(\d+)/g)].map((x) => Number(x[1])));
    const last = Math.max(...seqs);
    const gaps = [];
    for (let i = 1; i <= last; i++) if (!seqs.has(i)) gaps.push(i);
    expect(gaps, ping.stdout.slice(-2000)).toEqual([]);
    expect(received).toBe(seqs.size);
    expect(sent - last).toBeLessThanOrEqual(2);
    const stats = await lab.cliJson<{ ports: { name: string; rx_packets: number }[] }[]>(["stats"]);
    // counters of untouched ports were never reset: at least every ping request arrived on vif1.0
    expect(stats[0].ports.find((p) => p.name === "vif1.0")!.rx_packets).toBeGreaterThanOrEqual(sent);
  }, 20_000);
});
