// Privileged tests of the active-backup bond (issue 4). Needs root and `ip netns`; skips with the reason otherwise.
// Nothing touches the root namespace; addresses come from 198.18.0.0/15.
//
//   vm1 eth0 (TAP vif1.0) --+                                    +-- sw0 ~~ veth ~~ peth0 --+
//                           +-- dom0: tapbridge xenbr0, bond0 ---|                          |-- sw: Linux bridge br0 -- swx ~~ veth ~~ ext eth0
//   vm2 eth0 (TAP vif2.0) --+   (members peth0, peth1)           +-- sw1 ~~ veth ~~ peth1 --+   (the upstream "switch")
//
// The "switch" is a VLAN-unaware kernel bridge: it learns where the VMs' MACs live from what tapbridge sends, and floods
// broadcasts to both members (tapbridge must drop what arrives on the backup). Links are cut from the switch side
// (`ip link set sw0 down`: peth0 loses carrier) or by deleting the veth pair.
//
// The VMs can be made silent: IPv6 off and static (permanent) neighbour entries everywhere, so no VM sends a frame
// unless a test makes it; each VM's TAP tx counter proves it.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { destroyLab, Lab, PYTHON, canRunNetns, sleep, waitFor, type Background } from "./helpers.js";
import { PY_BCAST, PY_COUNT, rpc, switchFdb } from "./bond-helpers.js";
import type { BondMemberShow, BondShow, BridgeStats, PortStats } from "../support/json-shapes.js";

const support = canRunNetns();
if (!support.ok) console.warn(`netns bond tests skipped: ${support.reason}`);
const skipNote = support.ok ? "" : ` (skipped: ${support.reason})`;

const BRIDGE = "xenbr0";
const BOND = "bond0";

interface LogLine {
  msg: string;
  reason?: string;
  old_active?: string | null;
  new_active?: string | null;
  detection_ms?: number;
  [k: string]: unknown;
}

// ------------------------------------------------------------------------------------------------ python helpers

/** Send COUNT frames DST <- IFNAME's MAC tagged VID (inline 802.1Q, EtherType 0x88b5, payload MARKER), 20 ms apart. */
const PY_SEND_TAGGED = String.raw`
import socket, struct, sys, time
ifname, dst, vid, marker, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode(), int(sys.argv[5])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
frame = bytes(int(x, 16) for x in dst.split(":")) + s.getsockname()[4] + struct.pack("!HHH", 0x8100, vid, 0x88b5) + marker
frame += b"\0" * max(0, 64 - len(frame))
for i in range(count):
    s.send(frame); time.sleep(0.02)
print("sent", flush=True)
`;

/**
 * Capture RARPs (EtherType 0x8035, tagged inline or with the tag in PACKET_AUXDATA) received on IFNAME for TIMEOUT s.
 * Prints {"rarps": [{"src": mac, "vid": n|null}]}.
 */
const PY_RARP_CAPTURE = String.raw`
import json, socket, struct, sys, time
ifname, timeout = sys.argv[1], float(sys.argv[2])
SOL_PACKET, PACKET_AUXDATA, TP_STATUS_VLAN_VALID = 263, 8, 1 << 4
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
s.bind((ifname, 0))
print("ready", flush=True)
deadline = time.monotonic() + timeout
out = []
while True:
    left = deadline - time.monotonic()
    if left <= 0: break
    s.settimeout(left)
    try:
        data, anc, flags, addr = s.recvmsg(65536, socket.CMSG_SPACE(64))
    except socket.timeout:
        break
    if addr[2] == socket.PACKET_OUTGOING or len(data) < 14: continue
    vid = None
    for level, typ, cdata in anc:
        if level == SOL_PACKET and typ == PACKET_AUXDATA and len(cdata) >= 20:
            status, _l, _s, _m, _n, tci, tpid = struct.unpack("IIIHHHH", cdata[:20])
            if status & TP_STATUS_VLAN_VALID: vid = tci & 0xfff
    et = struct.unpack("!H", data[12:14])[0]
    if et == 0x8100 and len(data) >= 18:
        vid = struct.unpack("!H", data[14:16])[0] & 0xfff
        et = struct.unpack("!H", data[16:18])[0]
    if et == 0x8035:
        out.append({"src": ":".join("%02x" % b for b in data[6:12]), "vid": vid})
print(json.dumps({"rarps": out}), flush=True)
`;

// ------------------------------------------------------------------------------------------------ topology

interface VmSpec {
  node: string;
  vif: string;
  ip: string;
  mac: string;
  /** access VLAN of the vif (and the ext sub-interface that reaches it) */
  vlan?: number;
}

interface BondLabSpec {
  tag: string;
  bond: Record<string, unknown>;
  /** uplink VLAN keys beside `bond` */
  uplinkVlan?: Record<string, unknown>;
  vms: VmSpec[];
}

const EXT_MAC = "02:00:00:00:04:03";
const extIpFor = (vm: VmSpec): string => vm.ip.replace(/\.\d+$/, ".3");

/**
 * Builds switch, ext, dom0 (daemon with a bond uplink peth0/peth1) and the VMs; teaches both FDBs every VM MAC with one
 * ping each, and leaves every host with IPv6 off and permanent neighbour entries, so the VMs stay silent.
 */
async function buildBondLab(spec: BondLabSpec): Promise<Lab> {
  const lab = new Lab(spec.tag);
  try {
    for (const node of ["dom0", "sw", "ext", ...spec.vms.map((v) => v.node)]) {
      await lab.addNs(node);
      await lab.exec(node, ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1"]);
    }
    // the switch: a kernel bridge, no STP, no multicast snooping (no queries of its own)
    await lab.ip("sw", ["link", "add", "br0", "type", "bridge", "stp_state", "0", "mcast_snooping", "0"]);
    await lab.ip("sw", ["link", "set", "br0", "up"]);
    await addSwitchLink(lab, 0);
    await addSwitchLink(lab, 1);
    await lab.addVeth("sw", "swx", "ext", "eth0");
    await lab.ip("sw", ["link", "set", "swx", "master", "br0", "up"]);
    await lab.ip("ext", ["link", "set", "eth0", "address", EXT_MAC]);
    await lab.ip("ext", ["link", "set", "eth0", "up"]);
    // ext has an address in the untagged VMs' subnet (no 8021q in every kernel: tagged traffic is sent raw)
    const untagged = spec.vms.find((v) => !v.vlan);
    if (untagged) await lab.ip("ext", ["addr", "add", `${extIpFor(untagged)}/24`, "dev", "eth0"]);

    lab.writeConfig({
      control_socket: lab.socketPath,
      bridges: [
        {
          name: BRIDGE,
          uplink: { bond: { name: BOND, members: ["peth0", "peth1"], ...spec.bond }, ...(spec.uplinkVlan ?? {}) },
          ports: spec.vms.map((v) => (v.vlan ? { name: v.vif, vlan: v.vlan } : { name: v.vif })),
        },
      ],
    });
    await lab.startDaemon("dom0");
    for (const vm of spec.vms) {
      if (!(await waitFor(() => lab.linkExists("dom0", vm.vif), 10_000))) throw new Error(`no ${vm.vif} in dom0\n${lab.daemonLog()}`);
      await lab.moveLink("dom0", vm.vif, vm.node, "eth0");
      await lab.configureHost(vm.node, "eth0", vm.ip, undefined, vm.mac);
      // permanent neighbours both ways: nobody ARPs, the VMs stay silent unless a test makes them talk
      await lab.ip(vm.node, ["neigh", "replace", extIpFor(vm), "lladdr", EXT_MAC, "dev", "eth0", "nud", "permanent"]);
      if (!vm.vlan) await lab.ip("ext", ["neigh", "replace", vm.ip, "lladdr", vm.mac, "dev", "eth0", "nud", "permanent"]);
    }
    const show = await waitFor(async () => {
      const b = await bondShow(lab);
      return b.active === "peth0" && b.members.every((m) => m.mii_status === "up") ? b : null;
    }, 10_000);
    if (!show) throw new Error(`bond not up on peth0: ${JSON.stringify(await bondShow(lab))}\n${lab.daemonLog()}`);
    for (const vm of spec.vms) {
      if (vm.vlan) {
        // no answer in a VLAN (ext has no tagged interface), but the bridge and the switch learn the VM's MAC
        await lab.ping(vm.node, extIpFor(vm), 2, { intervalS: 0.05 });
        continue;
      }
      const p = await lab.pingUntil(vm.node, extIpFor(vm), 10_000);
      if (!p.ok) throw new Error(`${vm.node} cannot ping ext: ${p.output}\n${lab.daemonLog()}`);
    }
    return lab;
  } catch (err) {
    await lab.destroy();
    throw err;
  }
}

/** The veth pair swN (switch, in br0) <-> pethN (dom0), both up. */
async function addSwitchLink(lab: Lab, n: number): Promise<void> {
  await lab.addVeth("sw", `sw${n}`, "dom0", `peth${n}`);
  await lab.ip("sw", ["link", "set", `sw${n}`, "master", "br0", "up"]);
  await lab.ip("dom0", ["link", "set", `peth${n}`, "up"]);
}

async function bondShow(lab: Lab): Promise<BondShow> {
  return rpc<BondShow>(lab, "bond.show", { bond: BOND });
}

const member = (b: BondShow, name: string): BondMemberShow => {
  const m = b.members.find((x) => x.name === name);
  if (!m) throw new Error(`no member ${name} in ${JSON.stringify(b)}`);
  return m;
};

/** Polls `bond show` until pred holds (or timeoutMs); returns the last one. */
async function waitBond(lab: Lab, pred: (b: BondShow) => boolean, timeoutMs = 5_000): Promise<BondShow> {
  let last: BondShow | undefined;
  await waitFor(async () => pred((last = await bondShow(lab))), timeoutMs, 10);
  return last!;
}

/** Polls the switch FDB until every MAC sits on `port`; returns the ms it took (or -1) and the last table. */
async function waitSwitchFdb(lab: Lab, macs: string[], port: string, timeoutMs: number, since: number): Promise<{ ms: number; fdb: Map<string, string> }> {
  let fdb = new Map<string, string>();
  for (;;) {
    fdb = await switchFdb(lab);
    if (macs.every((m) => fdb.get(m) === port)) return { ms: Date.now() - since, fdb };
    if (Date.now() - since > timeoutMs) return { ms: -1, fdb };
    await sleep(10);
  }
}

async function txPackets(lab: Lab, node: string, ifname = "eth0"): Promise<number> {
  const r = await lab.ip(node, ["-s", "-j", "link", "show", "dev", ifname]);
  const l = JSON.parse(r.stdout) as { stats64: { tx: { packets: number } } }[];
  return l[0].stats64.tx.packets;
}

async function vmsTx(lab: Lab, vms: VmSpec[]): Promise<number[]> {
  return Promise.all(vms.map((v) => txPackets(lab, v.node)));
}

/** The daemon's JSON log lines with the given msg, from line `from` on. */
function logLines(lab: Lab, msg: string | RegExp, from = 0): LogLine[] {
  const out: LogLine[] = [];
  const lines = (lab.daemon?.stdout ?? "").split("\n").slice(from);
  for (const l of lines) {
    if (!l.startsWith("{")) continue;
    try {
      const j = JSON.parse(l) as LogLine;
      if (typeof msg === "string" ? j.msg === msg : msg.test(j.msg)) out.push(j);
    } catch {
      /* partial line */
    }
  }
  return out;
}
/**
 * Waits (up to timeoutMs) until the daemon's log has a line with msg from line `from` on that satisfies pred, and returns
 * every such line: the log arrives through a pipe, not in step with replies on the control socket.
 */
async function waitLog(lab: Lab, msg: string, from: number, pred: (l: LogLine) => boolean = () => true, timeoutMs = 3_000): Promise<LogLine[]> {
  let lines: LogLine[] = [];
  await waitFor(() => (lines = logLines(lab, msg, from).filter(pred)).length > 0, timeoutMs, 10);
  return lines;
}
const logMark = (lab: Lab): number => (lab.daemon?.stdout ?? "").split("\n").length - 1;

/** A bounded ping stream (-i 0.01) from node to addr in the background; parse with pingResult. */
function pingStream(lab: Lab, node: string, addr: string, count: number): Background {
  return lab.spawn(node, ["timeout", "30", "ping", "-n", "-q", "-i", "0.01", "-W", "1", "-c", String(count), addr], `ping stream ${node}`);
}
async function pingResult(bg: Background): Promise<{ sent: number; received: number; text: string }> {
  await bg.wait(40_000);
  const m = /(\d+) packets transmitted, (\d+) received/.exec(bg.stdout);
  return { sent: m ? Number(m[1]) : 0, received: m ? Number(m[2]) : 0, text: bg.stdout.trim() };
}

async function stats(lab: Lab): Promise<PortStats> {
  const s = await lab.cliJson<BridgeStats[]>(["stats"]);
  const p = s.find((b) => b.bridge === BRIDGE)?.ports.find((x) => x.name === BOND);
  if (!p) throw new Error(`no ${BOND} in stats: ${JSON.stringify(s)}`);
  return p;
}

// ------------------------------------------------------------------------------------------------ tests

describe.skipIf(!support.ok)("active-backup bond: failover, announcements, backup drops" + skipNote, () => {
  let lab: Lab;
  const VMS: VmSpec[] = [
    { node: "vm1", vif: "vif1.0", ip: "198.18.4.1", mac: "02:00:00:00:04:01" },
    { node: "vm2", vif: "vif2.0", ip: "198.18.4.2", mac: "02:00:00:00:04:02" },
  ];
  const EXT = "198.18.4.3";
  const vmMacs = VMS.map((v) => v.mac);
  /** link failures of each member so far, as the tests cause them */
  const failures: Record<string, number> = { peth0: 0, peth1: 0 };

  beforeAll(async () => {
    lab = await buildBondLab({ tag: "bond", bond: { primary: "peth0", primary_reselect: "always", miimon: 100 }, vms: VMS });
  }, 90_000);

  afterAll(() => destroyLab(lab));

  it("bond show -j has the issue's shape; show and showmacs see one bond port", async () => {
    const b = await lab.cliJson<BondShow>(["bond", "show", BOND]);
    expect(b).toMatchObject({
      name: BOND, mode: "active-backup", active: "peth0", primary: "peth0", mii_status: "up", miimon: 100, updelay: 0, downdelay: 0,
      failovers: 0, // the first selection is not a failover
    });
    expect(b.members.map((m) => ({ name: m.name, mii_status: m.mii_status, link_failures: m.link_failures }))).toEqual([
      { name: "peth0", mii_status: "up", link_failures: 0 },
      { name: "peth1", mii_status: "up", link_failures: 0 },
    ]);
    // without BOND: an array
    const all = await lab.cliJson<BondShow[]>(["bond", "show"]);
    expect(all.map((x) => x.name)).toEqual([BOND]);
    // text: the layout of /proc/net/bonding/bondX
    const text = await lab.cli(["bond", "show", BOND]);
    expect(text.code).toBe(0);
    for (const line of ["Bonding Mode: fault-tolerance (active-backup)", "Currently Active Slave: peth0", "MII Status: up", "MII Polling Interval (ms): 100", "Slave Interface: peth1", "Link Failure Count: 0"]) {
      expect(text.stdout).toContain(line);
    }
    const show = await lab.cliJson<{ name: string; uplink: { name: string; kind: string; state: string; packet_ring?: unknown } | null }[]>(["show"]);
    const { packet_ring: rings, ...uplink } = show.find((x) => x.name === BRIDGE)?.uplink ?? {};
    expect(uplink).toEqual({ name: BOND, kind: "bond", state: "up" });
    // each member's AF_PACKET socket has its PACKET_MMAP rings (packet_mmap is on by default)
    expect(Object.keys(rings as object).sort()).toEqual(["peth0", "peth1"]);
    for (const r of Object.values(rings as Record<string, unknown>)) expect(r).toMatchObject({ version: 2, frame_bytes: 2048, rx_frames: 4096, tx_frames: 0 });
    // the FDB points at the bond, never at a member
    const macs = await lab.cliJson<{ port: string; mac: string }[]>(["showmacs", BRIDGE]);
    expect(macs.find((m) => m.mac === EXT_MAC)?.port).toBe(BOND);
    expect(macs.some((m) => m.port === "peth0" || m.port === "peth1")).toBe(false);
  });

  it("traffic VM <-> ext keeps flowing when the active link goes down on the switch side, and when the primary returns", async () => {
    const mark = logMark(lab);
    const s1 = pingStream(lab, "vm1", EXT, 200);
    await sleep(600);
    await lab.ip("sw", ["link", "set", "sw0", "down"]);
    const r1 = await pingResult(s1);
    failures.peth0++;
    const b = await bondShow(lab);
    expect(b.active, JSON.stringify(b)).toBe("peth1");
    expect(member(b, "peth0")).toMatchObject({ mii_status: "down", link_failures: failures.peth0 });
    expect(member(b, "peth1")).toMatchObject({ mii_status: "up", link_failures: 0 });
    expect(b.failovers).toBe(1);
    console.log(`[bond] link down on the switch side: ${r1.received}/${r1.sent} pings at 10 ms answered`);
    expect(r1.sent).toBe(200);
    // how many of 200 pings 10 ms apart a failover costs depends on the machine's load: printed above, not asserted
    // (a bound on the gap belongs in scripts/bench/failover.sh); traffic flowing again is asserted
    expect(r1.received, r1.text).toBeGreaterThan(0);
    expect((await lab.ping("vm1", EXT, 3, { intervalS: 0.05 })).ok).toBe(true);
    // one log line for the failover: reason, old and new member, detection time
    const fo = await waitLog(lab, "bond failover", mark);
    expect(fo, lab.daemonLog(30)).toHaveLength(1);
    expect(fo[0]).toMatchObject({ old_active: "peth0", new_active: "peth1" });
    expect(fo[0].reason).toMatch(/carrier lost/);
    expect(typeof fo[0].detection_ms).toBe("number");

    // the primary comes back: primary_reselect always makes it active again, traffic keeps flowing
    const s2 = pingStream(lab, "vm2", EXT, 200);
    await sleep(600);
    await lab.ip("sw", ["link", "set", "sw0", "up"]);
    const r2 = await pingResult(s2);
    const back = await waitBond(lab, (x) => x.active === "peth0");
    expect(back.active, JSON.stringify(back)).toBe("peth0");
    expect(member(back, "peth0").mii_status).toBe("up");
    expect(back.failovers).toBe(2);
    console.log(`[bond] primary back: ${r2.received}/${r2.sent} pings at 10 ms answered`);
    expect(r2.received, r2.text).toBeGreaterThan(0);
    expect((await lab.ping("vm2", EXT, 3, { intervalS: 0.05 })).ok).toBe(true);
    expect((await waitLog(lab, "bond failover", mark, (l) => l.new_active === "peth0")).at(-1)).toMatchObject({ old_active: "peth1", new_active: "peth0" });
  });

  it("right after a failover the switch has every silent VM's MAC on the new link, and ext reaches a silent VM", async () => {
    // let the previous pings finish; from here on the VMs send nothing
    await sleep(300);
    const tx0 = await vmsTx(lab, VMS);
    const fdb0 = await switchFdb(lab);
    for (const m of vmMacs) expect(fdb0.get(m), `switch fdb before the cut: ${JSON.stringify([...fdb0])}`).toBe("sw0");

    // cut peth0: the RARPs of the new active member move both MACs to sw1
    const annMark = logMark(lab);
    let t0 = Date.now();
    await lab.ip("sw", ["link", "set", "sw0", "down"]);
    // the VMs send nothing (checked below), so only the announcements can move their MACs; how fast is a figure
    const cut = await waitSwitchFdb(lab, vmMacs, "sw1", 10_000, t0);
    failures.peth0++;
    console.log(`[bond] switch FDB has both VM MACs on sw1 ${cut.ms} ms after the cut`);
    expect(cut.ms, `switch fdb: ${JSON.stringify([...cut.fdb])}\n${lab.daemonLog(20)}`).toBeGreaterThanOrEqual(0);
    expect(await vmsTx(lab, VMS), "the VMs sent nothing").toEqual(tx0);
    const ann = (await waitLog(lab, "announced VM MACs (RARP)", annMark)).at(-1);
    expect(ann).toMatchObject({ member: "peth1" });
    expect(Number(ann?.macs)).toBeGreaterThanOrEqual(2);

    // the first frame from ext to a silent VM is unicast to its MAC (permanent neighbour entry) and gets through
    const p = await lab.ping("ext", VMS[1].ip, 1);
    expect(p.ok, `${p.output}\n${lab.daemonLog(20)}`).toBe(true);

    // the primary returns: the switch still has the MACs on sw1 (up, now the backup); only the RARPs on peth0 fix that
    await sleep(300);
    const tx1 = await vmsTx(lab, VMS);
    t0 = Date.now();
    await lab.ip("sw", ["link", "set", "sw0", "up"]);
    const ret = await waitSwitchFdb(lab, vmMacs, "sw0", 10_000, t0);
    console.log(`[bond] switch FDB has both VM MACs back on sw0 ${ret.ms} ms after the primary's return`);
    expect(ret.ms, `switch fdb: ${JSON.stringify([...ret.fdb])}\n${lab.daemonLog(20)}`).toBeGreaterThanOrEqual(0);
    expect(await vmsTx(lab, VMS), "the VMs sent nothing").toEqual(tx1);
    expect((await bondShow(lab)).active).toBe("peth0");
    // without the announcement the switch would send this to sw1, where tapbridge drops it (backup member)
    const q = await lab.ping("ext", VMS[0].ip, 1);
    expect(q.ok, `${q.output}\n${lab.daemonLog(20)}`).toBe(true);
  });

  it("a frame the switch floods back on the backup member is not forwarded to the VMs (backup_member counted)", async () => {
    const before = (await stats(lab)).drops.backup_member ?? 0;
    // ext broadcasts: the switch floods each frame to sw0 and sw1; each VM must see it once
    const counters = VMS.map((v) => lab.spawn(v.node, [PYTHON, "-c", PY_COUNT, "eth0", "TBFLOODEXT", "3"], `count ${v.node}`));
    for (const c of counters) await c.waitForOutput("ready");
    const send = lab.spawn("ext", [PYTHON, "-c", PY_BCAST, "eth0", "TBFLOODEXT", "5", "0.05"], "bcast ext");
    await send.wait(10_000);
    const got = [];
    for (const c of counters) {
      await c.wait(10_000);
      got.push((JSON.parse(c.stdout.trim().split("\n").at(-1)!) as { count: number }).count);
    }
    expect(send.stdout).toContain("sent");
    expect(got, "each VM receives each of ext's 5 broadcasts exactly once").toEqual([5, 5]);

    // a VM's broadcast leaves on the active member, comes back on the backup: vm1 must not hear it, vm2 once
    const c1 = VMS.map((v) => lab.spawn(v.node, [PYTHON, "-c", PY_COUNT, "eth0", "TBFLOODVM1", "3"], `count ${v.node}`));
    const cx = lab.spawn("ext", [PYTHON, "-c", PY_COUNT, "eth0", "TBFLOODVM1", "3"], "count ext");
    for (const c of [...c1, cx]) await c.waitForOutput("ready");
    await lab.spawn("vm1", [PYTHON, "-c", PY_BCAST, "eth0", "TBFLOODVM1", "5", "0.05"], "bcast vm1").wait(10_000);
    const got1 = [];
    for (const c of [...c1, cx]) {
      await c.wait(10_000);
      got1.push((JSON.parse(c.stdout.trim().split("\n").at(-1)!) as { count: number }).count);
    }
    expect(got1, "vm1, vm2, ext").toEqual([0, 5, 5]);
    const after = (await stats(lab)).drops.backup_member ?? 0;
    console.log(`[bond] backup_member drops: ${before} -> ${after}`);
    expect(after - before).toBeGreaterThanOrEqual(10);
  });

  it("the active member's veth deleted: traffic fails over; re-created, the member re-attaches and is active again", async () => {
    const mark = logMark(lab);
    const s1 = pingStream(lab, "vm1", EXT, 200);
    await sleep(600);
    await lab.ip("sw", ["link", "del", "sw0"]);
    const r1 = await pingResult(s1);
    failures.peth0++;
    const b = await bondShow(lab);
    expect(b.active).toBe("peth1");
    expect(member(b, "peth0")).toMatchObject({ mii_status: "down", link_failures: failures.peth0 });
    console.log(`[bond] veth deleted: ${r1.received}/${r1.sent} pings at 10 ms answered`);
    expect(r1.received, r1.text).toBeGreaterThan(0);
    // deleting a veth drops the carrier before the netdev goes: either is the reason
    const fo = await waitLog(lab, "bond failover", mark);
    expect(fo[0]).toMatchObject({ old_active: "peth0", new_active: "peth1" });
    expect(fo[0].reason).toMatch(/carrier lost|netdev deleted/);
    // ext still reaches both VMs
    for (const vm of VMS) expect((await lab.ping("ext", vm.ip, 2)).ok).toBe(true);

    // re-created: the member re-attaches (new ifindex) and, primary_reselect always, is the active one again
    await addSwitchLink(lab, 0);
    const up = await waitBond(lab, (x) => x.active === "peth0" && member(x, "peth0").mii_status === "up", 10_000);
    expect(up.active, `${JSON.stringify(up)}\n${lab.daemonLog(20)}`).toBe("peth0");
    expect(member(up, "peth0")).toMatchObject({ mii_status: "up", link_failures: failures.peth0 });
    // traffic flows through the re-created link (the switch learns VM MACs on the new sw0)
    const r2 = await lab.ping("vm2", EXT, 20, { intervalS: 0.01 });
    expect(r2.ok, r2.output).toBe(true);
    const fdb = await switchFdb(lab);
    expect(fdb.get(VMS[1].mac), JSON.stringify([...fdb])).toBe("sw0");
    // no spurious failover afterwards: miimon agrees with rtnetlink about the new netdev's carrier (operstate, hence
    // IFF_RUNNING, lags carrier by up to a second after a link comes up)
    await sleep(1_200);
    const later = await bondShow(lab);
    expect(later.active).toBe("peth0");
    expect(member(later, "peth0").link_failures).toBe(failures.peth0);
    expect(logLines(lab, "bond failover", mark).filter((l) => /miimon/.test(l.reason ?? "")), lab.daemonLog(20)).toEqual([]);
  });

  it("bond set-active forces a member; errors for a non-member, an unknown bond and a member that is down", async () => {
    const r = await lab.cli(["bond", "set-active", BOND, "peth1"]);
    expect(r.code, r.stderr).toBe(0);
    expect((await bondShow(lab)).active).toBe("peth1");
    expect((await lab.ping("vm1", EXT, 3, { intervalS: 0.05 })).ok).toBe(true);
    // the switch follows without the VM's help (the ping above went out on peth1 anyway; check the other VM)
    expect((await waitSwitchFdb(lab, [VMS[1].mac], "sw1", 10_000, Date.now())).ms).toBeGreaterThanOrEqual(0);
    expect((await waitLog(lab, "bond failover", 0, (l) => l.reason === "set-active")).at(-1)).toMatchObject({ reason: "set-active", new_active: "peth1" });

    const nm = await lab.cli(["bond", "set-active", BOND, "eth9"]);
    expect(nm.code).toBe(1);
    expect(nm.stderr).toMatch(/eth9 is not a member of bond0/);
    const nb = await lab.cli(["bond", "set-active", "bond7", "peth0"]);
    expect(nb.code).toBe(1);
    expect(nb.stderr).toMatch(/no such bond: bond7/);
    const usage = await lab.cli(["bond", "set-active", BOND]);
    expect(usage.code).toBe(2);

    // back to peth0, then take peth1 down: set-active peth1 is refused
    expect((await lab.cli(["bond", "set-active", BOND, "peth0"])).code).toBe(0);
    await lab.ip("sw", ["link", "set", "sw1", "down"]);
    failures.peth1++;
    await waitBond(lab, (x) => member(x, "peth1").mii_status === "down");
    const down = await lab.cli(["bond", "set-active", BOND, "peth1"]);
    expect([1, 2]).toContain(down.code);
    expect(down.stderr).toMatch(/peth1 is not up/);
    const b = await bondShow(lab);
    expect(b.active).toBe("peth0");
    expect(member(b, "peth1").link_failures).toBe(failures.peth1);
    await lab.ip("sw", ["link", "set", "sw1", "up"]);
    await waitBond(lab, (x) => member(x, "peth1").mii_status === "up");
  });

  it("both members down: the bond is down; the first member back is active at once", async () => {
    await lab.ip("sw", ["link", "set", "sw0", "down"]);
    await lab.ip("sw", ["link", "set", "sw1", "down"]);
    failures.peth0++;
    failures.peth1++;
    const down = await waitBond(lab, (x) => x.active === null);
    expect(down).toMatchObject({ active: null, mii_status: "down" });
    expect(down.members.map((m) => m.link_failures)).toEqual([failures.peth0, failures.peth1]);
    const show = await lab.cliJson<{ name: string; uplink: { state: string } | null }[]>(["show"]);
    expect(show[0].uplink?.state).toBe("down");
    await lab.ip("sw", ["link", "set", "sw1", "up"]);
    expect((await waitBond(lab, (x) => x.active === "peth1")).active).toBe("peth1");
    await lab.ip("sw", ["link", "set", "sw0", "up"]);
    expect((await waitBond(lab, (x) => x.active === "peth0")).active).toBe("peth0");
    expect((await lab.pingUntil("vm1", EXT, 5_000)).ok).toBe(true);
  });

  // last in this suite: it stops the daemon
  it("a clean shutdown (SIGTERM) neither fails over to the backup nor announces the VMs there", async () => {
    expect((await bondShow(lab)).active).toBe("peth0");
    const exit = await lab.stopDaemon();
    expect(exit.code, lab.daemonLog(20)).toBe(0);
    // from the shutdown on (an announcement round the previous test's failover scheduled may land just before it)
    const lines = lab.daemon!.stdout.split("\n");
    const mark = lines.findIndex((l) => l.includes('"msg":"shutting down"'));
    expect(mark, lab.daemonLog(20)).toBeGreaterThan(0);
    // before the fix: closing the members made the bond fail over to peth1 and send a round of RARPs there
    expect(logLines(lab, "bond failover", mark), lab.daemonLog(20)).toEqual([]);
    expect(logLines(lab, "announced VM MACs (RARP)", mark), lab.daemonLog(20)).toEqual([]);
    expect(logLines(lab, "stopped", mark)).toHaveLength(1);
  });
});

describe.skipIf(!support.ok)("active-backup bond: downdelay, updelay, primary_reselect failure" + skipNote, () => {
  let lab: Lab;
  const VMS: VmSpec[] = [{ node: "vm1", vif: "vif1.0", ip: "198.18.5.1", mac: "02:00:00:00:05:01" }];
  const EXT = "198.18.5.3";

  beforeAll(async () => {
    lab = await buildBondLab({
      tag: "bond-delay",
      bond: { primary: "peth0", primary_reselect: "failure", miimon: 100, downdelay: 300, updelay: 400, num_grat_arp: 3 },
      vms: VMS,
    });
  }, 90_000);

  afterAll(() => destroyLab(lab));

  it("downdelay 300: the failover happens about 300 ms after the carrier loss, not at once", async () => {
    const b0 = await bondShow(lab);
    expect(b0).toMatchObject({ active: "peth0", downdelay: 300, updelay: 400 });
    const mark = logMark(lab);
    const t0 = Date.now();
    await lab.ip("sw", ["link", "set", "sw0", "down"]);
    // the first view after the daemon has seen the carrier loss
    const early = await waitBond(lab, (x) => member(x, "peth0").state !== "up", 5_000);
    const earlyMs = Date.now() - t0;
    // only meaningful when the machine answered quickly: then peth0 is still active, "going down"
    if (earlyMs < 200) {
      expect(early.active, `${earlyMs} ms after the cut`).toBe("peth0");
      expect(member(early, "peth0").state).toBe("fail");
    }
    const after = await waitBond(lab, (x) => x.active === "peth1", 5_000);
    expect(after.active).toBe("peth1");
    expect(member(after, "peth0")).toMatchObject({ mii_status: "down", link_failures: 1 });
    const fo = await waitLog(lab, "bond failover", mark);
    expect(fo).toHaveLength(1);
    expect(fo[0].reason).toMatch(/downdelay/);
    console.log(`[bond] downdelay 300: failover decided ${fo[0].detection_ms} ms after the carrier loss (bond show ${earlyMs} ms after the cut: ${early.active})`);
    expect(fo[0].detection_ms).toBeGreaterThanOrEqual(280);
    // num_grat_arp 3, peer_notif_delay 0: three rounds, one miimon interval (100 ms) apart as in the bonding driver
    const rounds = await waitLog(lab, "announced VM MACs (RARP)", mark, (l) => l.round === 2);
    const ann = logLines(lab, "announced VM MACs (RARP)", mark);
    expect(ann.map((l) => l.round)).toEqual([0, 1, 2]);
    expect(ann.every((l) => l.member === "peth1")).toBe(true);
    const spacing = (Number(ann[2].time) - Number(ann[0].time)) / 2;
    console.log(`[bond] num_grat_arp 3: announcement rounds ${spacing} ms apart on average`);
    expect(rounds).toHaveLength(1);
    expect(spacing).toBeGreaterThanOrEqual(80);
    expect((await lab.pingUntil("vm1", EXT, 5_000)).ok).toBe(true);
  });

  it("updelay 400 and primary_reselect failure: the primary returns to `up` after updelay and does not take over", async () => {
    const mark = logMark(lab);
    const t0 = Date.now();
    await lab.ip("sw", ["link", "set", "sw0", "up"]);
    const early = await waitBond(lab, (x) => member(x, "peth0").state !== "down", 5_000);
    const earlyMs = Date.now() - t0;
    if (earlyMs < 300) expect(member(early, "peth0").state, `${earlyMs} ms after link up`).toBe("back");
    const up = await waitBond(lab, (x) => member(x, "peth0").state === "up", 5_000);
    const upMs = Date.now() - t0;
    console.log(`[bond] updelay 400: peth0 seen up ${upMs} ms after link up (state ${member(early, "peth0").state} at ${earlyMs} ms)`);
    expect(member(up, "peth0").mii_status).toBe("up");
    expect(upMs).toBeGreaterThanOrEqual(350);
    // failure: the healthy active member stays
    await sleep(300);
    expect((await bondShow(lab)).active).toBe("peth1");
    expect(logLines(lab, "bond failover", mark)).toEqual([]);
    // ... until it fails: then peth0, after downdelay
    await lab.ip("sw", ["link", "set", "sw1", "down"]);
    const b = await waitBond(lab, (x) => x.active === "peth0", 5_000);
    expect(b.active).toBe("peth0");
    expect((await waitLog(lab, "bond failover", mark))[0]).toMatchObject({ old_active: "peth1", new_active: "peth0" });
    expect((await lab.pingUntil("vm1", EXT, 5_000)).ok).toBe(true);
    await lab.ip("sw", ["link", "set", "sw1", "up"]);
  });
});

describe.skipIf(!support.ok)("active-backup bond with a VLAN trunk: tagged announcements per VLAN" + skipNote, () => {
  let lab: Lab;
  const VMS: VmSpec[] = [
    { node: "vm1", vif: "vif1.0", ip: "198.18.10.1", mac: "02:00:00:00:0a:01", vlan: 10 },
    { node: "vm2", vif: "vif2.0", ip: "198.18.20.2", mac: "02:00:00:00:14:02", vlan: 20 },
  ];

  beforeAll(async () => {
    lab = await buildBondLab({ tag: "bond-vlan", bond: { primary: "peth0" }, uplinkVlan: { trunk: [10, 20] }, vms: VMS });
  }, 90_000);

  afterAll(() => destroyLab(lab));

  it("after a failover the RARPs on the new active member carry each VM's VLAN tag", async () => {
    const macs = await lab.cliJson<{ port: string; mac: string; vlan: number }[]>(["showmacs", BRIDGE]);
    expect(macs.find((m) => m.mac === VMS[0].mac)).toMatchObject({ port: "vif1.0", vlan: 10 });
    expect(macs.find((m) => m.mac === VMS[1].mac)).toMatchObject({ port: "vif2.0", vlan: 20 });

    const cap = lab.spawn("sw", [PYTHON, "-c", PY_RARP_CAPTURE, "sw1", "2"], "rarp capture sw1");
    await cap.waitForOutput("ready");
    await lab.ip("sw", ["link", "set", "sw0", "down"]);
    await cap.wait(10_000);
    const rarps = (JSON.parse(cap.stdout.trim().split("\n").at(-1)!) as { rarps: { src: string; vid: number | null }[] }).rarps;
    console.log(`[bond] RARPs on sw1 after the failover: ${JSON.stringify(rarps)}`);
    const vm = rarps.filter((r) => r.src !== EXT_MAC);
    expect(vm).toContainEqual({ src: VMS[0].mac, vid: 10 });
    expect(vm).toContainEqual({ src: VMS[1].mac, vid: 20 });
    // never untagged, never in the other VM's VLAN, never for a MAC learned from the uplink
    expect(vm.every((r) => (r.src === VMS[0].mac && r.vid === 10) || (r.src === VMS[1].mac && r.vid === 20)), JSON.stringify(rarps)).toBe(true);
    expect(rarps.some((r) => r.src === EXT_MAC)).toBe(false);
    expect((await bondShow(lab)).active).toBe("peth1");

    // ext reaches each silent VM in its VLAN through the new member: frames tagged 10 to vm1, 20 to vm2
    const counters = VMS.map((v) => lab.spawn(v.node, [PYTHON, "-c", PY_COUNT, "eth0", "TBVLANEXT", "2"], `count ${v.node}`));
    for (const c of counters) await c.waitForOutput("ready");
    for (const v of VMS) {
      await lab.spawn("ext", [PYTHON, "-c", PY_SEND_TAGGED, "eth0", v.mac, String(v.vlan), "TBVLANEXT", "3"], "tagged send").wait(10_000);
    }
    const got = [];
    for (const c of counters) {
      await c.wait(10_000);
      got.push((JSON.parse(c.stdout.trim().split("\n").at(-1)!) as { count: number }).count);
    }
    expect(got, "frames from ext received by vm1, vm2").toEqual([3, 3]);
    await lab.ip("sw", ["link", "set", "sw0", "up"]);
    expect((await waitBond(lab, (x) => x.active === "peth0")).active).toBe("peth0");
  });
});
