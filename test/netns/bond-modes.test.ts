// Privileged tests of the bond modes that use every member (issue 24): balance-slb against a kernel bridge as the
// upstream switch, and 802.3ad against Open vSwitch's userspace datapath (ovs-vswitchd started by hand in the switch's
// namespace, a bond with lacp=active, bond_mode=balance-tcp). Needs root and `ip netns`; the LACP part also Open
// vSwitch (scripts/setup-test-deps.sh installs openvswitch-switch); each skips with its reason otherwise.
// Nothing touches the root namespace; addresses come from 198.18.0.0/15.
//
//   vmN eth0 (TAP vifN.0) --+                                  +-- sw0 ~~ veth ~~ peth0 --+
//                           +-- dom0: tapbridge xenbr0, bond0 -+-- sw1 ~~ veth ~~ peth1 --+-- sw: kernel bridge br0 or OVS br0 -- swx ~~ ext eth0
//                                                              +-- (LACP only) peth2 ~~ veth ~~ dead0 in "dead": a peer without LACP

import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { destroyLab, Lab, PYTHON, canRunNetns, run, sleep, waitFor } from "./helpers.js";
import { takeover } from "./handover-helpers.js";
import { PY_BCAST, PY_COUNT, rpc, switchFdb } from "./bond-helpers.js";

const support = canRunNetns();
if (!support.ok) console.warn(`netns bond-modes tests skipped: ${support.reason}`);
const OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema";
const ovsOk = ["/usr/sbin/ovs-vswitchd", "/usr/sbin/ovsdb-server", "/usr/bin/ovs-vsctl", "/usr/bin/ovsdb-tool", OVS_SCHEMA].every((f) => existsSync(f));
if (support.ok && !ovsOk) console.warn("netns LACP tests skipped: Open vSwitch not installed (Debian package openvswitch-switch)");

const BRIDGE = "xenbr0";
const BOND = "bond0";
const EXT_MAC = "02:00:00:00:04:03";
const EXT_IP = "198.18.40.3";

interface Vm { node: string; vif: string; ip: string; mac: string }
const VMS: Vm[] = [1, 2, 3, 4].map((i) => ({ node: `vm${i}`, vif: `vif${i}.0`, ip: `198.18.40.${10 + i}`, mac: `02:00:00:00:40:0${i}` }));

interface MemberShow { name: string; mii_status: string; tx_packets?: number; macs?: string[]; load?: number;
  lacp?: { rx_state: string; mux_state: string; selected: boolean; partner_mismatch: boolean; lacpdus_rx: number } }
interface BondShow { mode: string; active: string | null; members: MemberShow[]; rebalance_moves?: number; failover_moves?: number;
  lacp?: { distributing: string[]; aggregator_partner: unknown } }
interface Drops { backup_member: number; looped_back: number; no_member: number; link_local: number }

/** COUNT UDP datagrams to DST:9 from source ports 20000.. (one flow each). */
const PY_UDP_FLOWS = String.raw`
import socket, sys
dst, count = sys.argv[1], int(sys.argv[2])
for i in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 20000 + i))
    for k in range(5): s.sendto(b"x" * 200, (dst, 9))
    s.close()
print("sent", flush=True)
`;

const bondShow = (lab: Lab): Promise<BondShow> => rpc<BondShow>(lab, "bond.show", { bond: BOND });
async function bondDrops(lab: Lab): Promise<Drops> {
  const st = await rpc<{ bridge: string; ports: { name: string; drops: Drops }[] }[]>(lab, "stats");
  return st.find((b) => b.bridge === BRIDGE)!.ports.find((p) => p.name === BOND)!.drops;
}
const txOf = (b: BondShow, name: string): number => b.members.find((m) => m.name === name)?.tx_packets ?? 0;

async function waitBond(lab: Lab, pred: (b: BondShow) => boolean, timeoutMs: number): Promise<BondShow> {
  let last: BondShow | undefined;
  await waitFor(async () => pred((last = await bondShow(lab))), timeoutMs, 50);
  return last!;
}

/** Namespaces, links, the VMs and the daemon; `switchUp` builds the switch (kernel bridge or OVS) on sw0, sw1, swx. */
async function buildLab(tag: string, bond: Record<string, unknown>, members: string[], switchUp: (lab: Lab) => Promise<void>): Promise<Lab> {
  const lab = new Lab(tag);
  try {
    for (const node of ["dom0", "sw", "ext", ...VMS.map((v) => v.node)]) {
      await lab.addNs(node);
      await lab.exec(node, ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1"]);
    }
    for (const n of [0, 1]) {
      await lab.addVeth("sw", `sw${n}`, "dom0", `peth${n}`);
      await lab.ip("sw", ["link", "set", `sw${n}`, "up"]);
      await lab.ip("dom0", ["link", "set", `peth${n}`, "up"]);
    }
    if (members.includes("peth2")) {
      await lab.addNs("dead");
      await lab.addVeth("dead", "dead0", "dom0", "peth2");
      await lab.ip("dead", ["link", "set", "dead0", "up"]);
      await lab.ip("dom0", ["link", "set", "peth2", "up"]);
    }
    await lab.addVeth("sw", "swx", "ext", "eth0");
    await lab.ip("sw", ["link", "set", "swx", "up"]);
    await lab.ip("ext", ["link", "set", "eth0", "address", EXT_MAC]);
    await lab.ip("ext", ["link", "set", "eth0", "up"]);
    await lab.ip("ext", ["addr", "add", `${EXT_IP}/24`, "dev", "eth0"]);
    // OVS AF_PACKET ports have no vnet headers: no partial checksums from the hosts (DESIGN §9)
    await lab.exec("ext", ["ethtool", "-K", "eth0", "tx", "off", "tso", "off", "gso", "off"], { check: false });
    await switchUp(lab);
    lab.writeConfig({
      control_socket: lab.socketPath,
      bridges: [{ name: BRIDGE, uplink: { bond: { name: BOND, members, ...bond } }, ports: VMS.map((v) => ({ name: v.vif })) }],
    });
    await lab.startDaemon("dom0");
    for (const vm of VMS) {
      if (!(await waitFor(() => lab.linkExists("dom0", vm.vif), 10_000))) throw new Error(`no ${vm.vif} in dom0\n${lab.daemonLog()}`);
      await lab.moveLink("dom0", vm.vif, vm.node, "eth0");
      await lab.configureHost(vm.node, "eth0", vm.ip, undefined, vm.mac);
      await lab.exec(vm.node, ["ethtool", "-K", "eth0", "tx", "off", "tso", "off", "gso", "off"], { check: false });
      await lab.ip(vm.node, ["neigh", "replace", EXT_IP, "lladdr", EXT_MAC, "dev", "eth0", "nud", "permanent"]);
      await lab.ip("ext", ["neigh", "replace", vm.ip, "lladdr", vm.mac, "dev", "eth0", "nud", "permanent"]);
    }
    return lab;
  } catch (err) {
    await lab.destroy();
    throw err;
  }
}

async function pingAll(lab: Lab): Promise<void> {
  for (const vm of VMS) {
    const p = await lab.pingUntil(vm.node, EXT_IP, 15_000);
    if (!p.ok) throw new Error(`${vm.node} cannot ping ext: ${p.output}\n${lab.daemonLog()}`);
  }
}

/** A 100 Hz ping stream; returns {sent, received}. */
async function pingStream(lab: Lab, node: string, count: number, during: () => Promise<void>): Promise<{ sent: number; received: number }> {
  const bg = lab.spawn(node, ["timeout", "30", "ping", "-n", "-q", "-i", "0.01", "-W", "1", "-c", String(count), EXT_IP], `ping ${node}`);
  await sleep(500);
  await during();
  await bg.wait(40_000);
  const m = /(\d+) packets transmitted, (\d+) received/.exec(bg.stdout);
  return { sent: m ? Number(m[1]) : 0, received: m ? Number(m[2]) : 0 };
}

// ------------------------------------------------------------------------------------------------ balance-slb

describe.skipIf(!support.ok)("balance-slb bond against a kernel bridge", () => {
  let lab: Lab | undefined;
  beforeAll(async () => {
    lab = await buildLab("slb", { mode: "balance-slb", rebalance_interval: 0 }, ["peth0", "peth1"], async (l) => {
      await l.ip("sw", ["link", "add", "br0", "type", "bridge", "stp_state", "0", "mcast_snooping", "0"]);
      await l.ip("sw", ["link", "set", "br0", "up"]);
      for (const p of ["sw0", "sw1", "swx"]) await l.ip("sw", ["link", "set", p, "master", "br0"]);
    });
    await waitBond(lab, (b) => b.members.every((m) => m.mii_status === "up"), 10_000);
    await pingAll(lab);
  }, 90_000);
  afterAll(async () => destroyLab(lab), 30_000);

  it("several guests' traffic spreads over both members, and the switch learns their MACs on both", async () => {
    const b = await bondShow(lab!);
    expect(b.mode).toBe("balance-slb");
    expect(txOf(b, "peth0")).toBeGreaterThan(0);
    expect(txOf(b, "peth1")).toBeGreaterThan(0);
    const fdb = await switchFdb(lab!);
    const ports = new Set(VMS.map((v) => fdb.get(v.mac)));
    expect(ports).toEqual(new Set(["sw0", "sw1"]));
    // bond show lists each VM's MAC on the member the switch learned it at
    for (const vm of VMS) expect(b.members.find((m) => m.macs?.includes(vm.mac))?.name).toBe(fdb.get(vm.mac)!.replace("sw", "peth"));
  }, 30_000);

  it("a broadcast from upstream reaches each guest exactly once; a guest's broadcast does not come back (looped_back)", async () => {
    const counters = VMS.map((vm) => lab!.spawn(vm.node, [PYTHON, "-c", PY_COUNT, "eth0", "SLBBCAST1", "3"], `count ${vm.node}`));
    for (const c of counters) await c.waitForOutput("ready");
    const before = await bondDrops(lab!);
    const tx = lab!.spawn("ext", [PYTHON, "-c", PY_BCAST, "eth0", "SLBBCAST1", "20", "0.01"], "bcast ext");
    await tx.wait(10_000);
    for (const c of counters) await c.wait(10_000);
    for (const c of counters) expect(JSON.parse(c.stdout.split("\n").find((l) => l.startsWith("{"))!).count).toBe(20);
    // a broadcast of a guest whose MAC hashes to the member that does not take floods: the switch floods it back
    // through the other member, the one that does, where only the source-MAC rule stops it (looped_back)
    const b = await bondShow(lab!);
    const other = b.members.find((m) => m.name !== b.active)!;
    const sender = VMS.find((v) => other.macs?.includes(v.mac))!;
    expect(sender).toBeDefined();
    const listeners = VMS.filter((v) => v !== sender);
    const counters2 = listeners.map((vm) => lab!.spawn(vm.node, [PYTHON, "-c", PY_COUNT, "eth0", "SLBBCAST2", "3"], `count ${vm.node}`));
    const extCount = lab!.spawn("ext", [PYTHON, "-c", PY_COUNT, "eth0", "SLBBCAST2", "3"], "count ext");
    for (const c of [...counters2, extCount]) await c.waitForOutput("ready");
    const mid = await bondDrops(lab!);
    await lab!.spawn(sender.node, [PYTHON, "-c", PY_BCAST, "eth0", "SLBBCAST2", "20", "0.01"], `bcast ${sender.node}`).wait(10_000);
    for (const c of [...counters2, extCount]) await c.wait(10_000);
    for (const c of [...counters2, extCount]) expect(JSON.parse(c.stdout.split("\n").find((l) => l.startsWith("{"))!).count).toBe(20);
    const after = await bondDrops(lab!);
    expect(mid.backup_member - before.backup_member).toBeGreaterThanOrEqual(20); // the upstream broadcasts on the other member
    expect(after.looped_back - mid.looped_back).toBeGreaterThanOrEqual(20); // the guest's broadcasts flooded back
  }, 40_000);

  it("failover moves every MAC of the failed member at once and the switch learns them on the other; traffic goes on", async () => {
    const fdb0 = await switchFdb(lab!);
    const onPeth1 = VMS.filter((v) => fdb0.get(v.mac) === "sw1");
    expect(onPeth1.length).toBeGreaterThan(0);
    const victim = onPeth1[0];
    let learnMs = -1;
    const r = await pingStream(lab!, victim.node, 300, async () => {
      const t0 = Date.now();
      await lab!.ip("sw", ["link", "set", "sw1", "down"]);
      await waitFor(async () => {
        const f = await switchFdb(lab!);
        return onPeth1.every((v) => f.get(v.mac) === "sw0");
      }, 5_000, 5);
      learnMs = Date.now() - t0;
    });
    console.log(`slb failover: switch relearned ${onPeth1.length} MAC(s) in ${learnMs} ms; ping ${r.received}/${r.sent} (gap ~${(r.sent - r.received) * 10} ms)`);
    const f = await switchFdb(lab!);
    for (const v of onPeth1) expect(f.get(v.mac)).toBe("sw0");
    expect(r.received).toBeGreaterThan(0);
    const b = await bondShow(lab!);
    expect(b.failover_moves).toBeGreaterThan(0);
    await lab!.ip("sw", ["link", "set", "sw1", "up"]);
    await waitBond(lab!, (x) => x.members.every((m) => m.mii_status === "up"), 10_000);
  }, 60_000);

  it("bond rebalance moves a loaded MAC to the idle member and the switch learns it there at once", async () => {
    // after the failover every MAC is on peth0 and peth1 idles: load two guests, then rebalance
    const loads = [VMS[0], VMS[1]].map((vm) => lab!.spawn(vm.node, ["timeout", "10", "ping", "-n", "-q", "-i", "0.005", "-s", "1000", "-c", "400", EXT_IP], `load ${vm.node}`));
    for (const l of loads) await l.wait(20_000);
    const before = await bondShow(lab!);
    expect(before.members.find((m) => m.name === "peth1")!.macs ?? []).toEqual([]);
    let r: BondShow & { moved: number } = { ...before, moved: 0 };
    let learnMs = -1;
    // both loaded guests ping at 100 Hz through the rebalance: the moved one's loss is the gap
    const streams = await Promise.all([VMS[0], VMS[1]].map((vm) => pingStream(lab!, vm.node, 200, async () => {
      if (vm !== VMS[0]) return;
      const t0 = Date.now();
      r = await rpc<BondShow & { moved: number }>(lab!, "bond.rebalance", { bond: BOND });
      const moved = r.members.find((m) => m.name === "peth1")!.macs ?? [];
      await waitFor(async () => {
        const f = await switchFdb(lab!);
        return moved.length > 0 && moved.every((m) => f.get(m) === "sw1");
      }, 3_000, 5);
      learnMs = Date.now() - t0;
    })));
    expect(r.moved).toBeGreaterThan(0);
    const movedMacs = r.members.find((m) => m.name === "peth1")!.macs!;
    expect(movedMacs.length).toBeGreaterThan(0);
    console.log(`slb rebalance: moved ${movedMacs.join(", ")}; switch learned it at sw1 ${learnMs} ms after the request; ping through it ${streams.map((x) => `${x.received}/${x.sent}`).join(", ")}`);
    const f = await switchFdb(lab!);
    for (const m of movedMacs) expect(f.get(m)).toBe("sw1");
    // and its traffic flows on peth1
    const tx1 = txOf(r, "peth1");
    const vm = VMS.find((v) => v.mac === movedMacs[0])!;
    expect((await lab!.ping(vm.node, EXT_IP, 5, { intervalS: 0.05 })).ok).toBe(true);
    expect(txOf(await bondShow(lab!), "peth1")).toBeGreaterThan(tx1);
  }, 60_000);

  it("--takeover keeps every SLB assignment: no MAC moves", async () => {
    const before = await bondShow(lab!);
    const fdb0 = await switchFdb(lab!);
    await takeover(lab!);
    const after = await bondShow(lab!);
    for (const m of before.members) expect(after.members.find((x) => x.name === m.name)!.macs?.sort()).toEqual(m.macs?.sort());
    for (const vm of VMS) expect((await lab!.ping(vm.node, EXT_IP, 2, { intervalS: 0.05 })).ok).toBe(true);
    const fdb1 = await switchFdb(lab!);
    for (const vm of VMS) expect(fdb1.get(vm.mac)).toBe(fdb0.get(vm.mac));
  }, 60_000);

  it("bond set-mode is refused while running", async () => {
    await expect(rpc(lab!, "bond.set_mode", { bond: BOND, mode: "802.3ad" })).rejects.toThrow(/cannot change while it runs/);
  });
});

// ------------------------------------------------------------------------------------------------ 802.3ad

/** ovsdb-server and ovs-vswitchd in the switch's namespace (foreground: the lab stops them), bond sw0+sw1 with LACP. */
async function ovsUp(lab: Lab): Promise<void> {
  const d = join(lab.dir, "ovs");
  await run("mkdir", ["-p", d]);
  await run("ovsdb-tool", ["create", join(d, "conf.db"), OVS_SCHEMA]);
  const db = `unix:${join(d, "db.sock")}`;
  lab.spawn("sw", ["ovsdb-server", join(d, "conf.db"), `--remote=punix:${join(d, "db.sock")}`, `--unixctl=${join(d, "ovsdb.ctl")}`,
    `--log-file=${join(d, "ovsdb.log")}`, "--no-chdir", "-vconsole:off"], "ovsdb-server");
  if (!(await waitFor(() => existsSync(join(d, "db.sock")), 10_000))) throw new Error("ovsdb-server: no socket");
  const vsctl = (args: string[]): Promise<unknown> => run("ovs-vsctl", [`--db=${db}`, "--timeout=10", ...args]);
  await vsctl(["--no-wait", "init"]);
  lab.spawn("sw", ["ovs-vswitchd", db, `--unixctl=${join(d, "vswitchd.ctl")}`, `--log-file=${join(d, "vswitchd.log")}`, "--no-chdir", "-vconsole:off"], "ovs-vswitchd");
  if (!(await waitFor(() => existsSync(join(d, "vswitchd.ctl")), 10_000))) throw new Error("ovs-vswitchd: no control socket");
  await vsctl(["add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev", "--", "add-port", "br0", "swx",
    "--", "add-bond", "br0", "bond0", "sw0", "sw1", "lacp=active", "bond_mode=balance-tcp", "other_config:lacp-time=fast"]);
  await run("ip", ["netns", "exec", lab.ns("sw"), "ip", "link", "set", "br0", "up"], { check: false });
}

const appctl = (lab: Lab, args: string[]): Promise<string> =>
  run("ovs-appctl", [`--target=${join(lab.dir, "ovs", "vswitchd.ctl")}`, ...args]).then((r) => r.stdout);

describe.skipIf(!support.ok || !ovsOk)("802.3ad bond against Open vSwitch (userspace, lacp=active, balance-tcp)", () => {
  let lab: Lab | undefined;
  beforeAll(async () => {
    lab = await buildLab("lacp", { mode: "802.3ad", lacp: "active", lacp_rate: "fast", hash: "layer3+4" }, ["peth0", "peth1", "peth2"], ovsUp);
  }, 90_000);
  afterAll(async () => destroyLab(lab), 30_000);

  it("the aggregation forms: both members collecting and distributing on both sides; the member to a non-LACP peer stays out", async () => {
    const t0 = Date.now();
    const b = await waitBond(lab!, (x) => (x.lacp?.distributing.length ?? 0) === 2, 20_000);
    console.log(`lacp: aggregation formed ${Date.now() - t0} ms after the daemon was up`);
    expect(b.lacp!.distributing.sort()).toEqual(["peth0", "peth1"]);
    const dead = b.members.find((m) => m.name === "peth2")!;
    expect(dead.lacp!.selected).toBe(false);
    expect(dead.lacp!.rx_state).toBe("defaulted");
    expect(dead.lacp!.mux_state).toBe("detached");
    let show = "";
    await waitFor(async () => (show = await appctl(lab!, ["lacp/show", "bond0"])).split("current").length - 1 >= 2 && !/negotiated: false/.test(show), 10_000, 200);
    console.log(show);
    expect(show).toMatch(/status: active negotiated/);
    for (const m of ["sw0", "sw1"]) expect(show).toMatch(new RegExp(`member: ${m}: current attached`));
    const bs = await appctl(lab!, ["bond/show", "bond0"]);
    expect(bs.match(/may_enable: true/g)?.length).toBe(2);
    await pingAll(lab!);
  }, 60_000);

  it("several flows use both links; LACPDUs never reach the bridge", async () => {
    const before = await bondShow(lab!);
    await lab!.spawn("vm1", [PYTHON, "-c", PY_UDP_FLOWS, EXT_IP, "32"], "udp flows").wait(20_000);
    const after = await bondShow(lab!);
    expect(txOf(after, "peth0") - txOf(before, "peth0")).toBeGreaterThan(0);
    expect(txOf(after, "peth1") - txOf(before, "peth1")).toBeGreaterThan(0);
    expect(after.members.find((m) => m.name === "peth0")!.lacp!.lacpdus_rx).toBeGreaterThan(0);
    // LACPDUs are the bond's: counted per member, never handed to the bridge (which would count them as link_local)
    const d0 = await bondDrops(lab!);
    const rx0 = before.members.reduce((n, m) => n + (m.lacp?.lacpdus_rx ?? 0), 0);
    await sleep(2_500);
    const d1 = await bondDrops(lab!);
    const rx1 = (await bondShow(lab!)).members.reduce((n, m) => n + (m.lacp?.lacpdus_rx ?? 0), 0);
    expect(rx1 - rx0).toBeGreaterThanOrEqual(4); // fast rate: one per second per member
    expect(d1.link_local - d0.link_local).toBe(0);
  }, 40_000);

  it("cutting one link keeps every flow going (gap measured); re-adding it rejoins", async () => {
    const rs = await Promise.all(VMS.map((vm) => pingStream(lab!, vm.node, 400, async () => {
      if (vm === VMS[0]) await lab!.ip("sw", ["link", "set", "sw1", "down"]);
    })));
    const lost = rs.map((r) => r.sent - r.received);
    console.log(`lacp link cut: lost per flow ${lost.join(", ")} of ${rs[0].sent} (100 Hz: ~${Math.max(...lost) * 10} ms gap max)`);
    for (const r of rs) expect(r.received).toBeGreaterThan(r.sent / 2);
    const b = await waitBond(lab!, (x) => x.lacp!.distributing.length === 1, 5_000);
    expect(b.lacp!.distributing).toEqual(["peth0"]);
    await lab!.ip("sw", ["link", "set", "sw1", "up"]);
    const t0 = Date.now();
    const back = await waitBond(lab!, (x) => x.lacp!.distributing.length === 2, 15_000);
    console.log(`lacp rejoin: ${Date.now() - t0} ms`);
    expect(back.lacp!.distributing.sort()).toEqual(["peth0", "peth1"]);
  }, 90_000);

  it("--takeover carries the LACP state: the new daemon distributes at once and Open vSwitch sees no change", async () => {
    await waitBond(lab!, (x) => x.lacp!.distributing.length === 2, 15_000);
    let watching = true;
    const ovsStates = new Set<string>();
    const watch = (async () => {
      while (watching) {
        const show = await appctl(lab!, ["bond/show", "bond0"]);
        ovsStates.add(`may_enable true x${show.match(/may_enable: true/g)?.length ?? 0}`);
        await sleep(20);
      }
    })();
    const r = await pingStream(lab!, "vm1", 300, async () => {
      await takeover(lab!);
    });
    const b = await bondShow(lab!);
    await sleep(4_000); // longer than the partner's 3 s timeout: a stale or missing LACPDU would show now
    watching = false;
    await watch;
    const b2 = await bondShow(lab!);
    console.log(`lacp takeover: ping ${r.received}/${r.sent}; OVS states seen: ${[...ovsStates].join(", ")}`);
    expect(b.lacp!.distributing.sort()).toEqual(["peth0", "peth1"]);
    expect(b2.lacp!.distributing.sort()).toEqual(["peth0", "peth1"]);
    expect([...ovsStates]).toEqual(["may_enable true x2"]);
    expect(b2.members.filter((m) => m.name !== "peth2").every((m) => m.lacp!.mux_state === "collecting_distributing")).toBe(true);
  }, 90_000);
});
