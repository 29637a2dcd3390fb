// Multicast per VLAN with real kernel hosts (issue 22): router ports per (port, VLAN), the querier per VLAN, and a
// reload that changes only multicast keys. Needs root and `ip netns`; skips with the reason otherwise.
//
//   a10 eth0 198.18.26.1 ~~ vif1.0 (access 10) --+
//   b20 eth0 198.18.26.2 ~~ vif2.0 (access 20) --+-- dom0: tapbridge xenbr0 (querier 198.18.26.100) -- peth0 (trunk
//                                                                                                       10,20,30)
//                                                                                                         ~~ up eth0
//   t30 eth0 198.18.26.3 ~~ up sw30 ------ relay in up: VLAN 30 on eth0 <-> untagged on sw30 (this kernel has no 8021q);
//                                          it also sends a lower-addressed (198.18.26.50) IGMPv2 query in VLAN 10
//                                          every 2 s and counts what tapbridge sends out of peth0, per VLAN
//
// VLAN 30 exists only on the trunk: t30 is a kernel host in a tagged VLAN. Membership interval shortened to
// 2 x 2 s + 1 s = 5 s; other querier present interval 2 x 2 s + 0.5 s = 4.5 s.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { destroyLab, Lab, PYTHON, canRunNetns, sleep, waitFor } from "./helpers.js";
import type { MdbShow } from "../../src/mdb/control.js";

const support = canRunNetns();
if (!support.ok) console.warn(`netns tests skipped: ${support.reason}`);
const skipNote = support.ok ? "" : ` (skipped: ${support.reason})`;

/** Member: argv group, seconds: joins on eth0 (IP_ADD_MEMBERSHIP), prints "ready", stays `seconds`. */
const PY_JOIN = String.raw`
import socket, struct, sys, time
group, secs = sys.argv[1], float(sys.argv[2])
m = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
m.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + socket.inet_aton("0.0.0.0") + struct.pack("@i", socket.if_nametoindex("eth0")))
print("ready", flush=True)
time.sleep(secs)
`;

/**
 * Relay and counter: argv trunk, access, vid, seconds, inject_vid, inject_src, inject_every. Frames of VLAN `vid` from
 * the trunk go untagged to `access`, frames from `access` go to the trunk tagged `vid`. Every `inject_every` seconds it
 * sends an IGMPv2 general query from inject_src tagged inject_vid on the trunk. Counts what arrives from the trunk by
 * "vid:kind" (kind: query = an IGMP query not from inject_src, report = an IGMP report or leave). Prints "ready", then
 * one JSON line.
 */
const PY_RELAY = String.raw`
import json, select, socket, struct, sys, time
trunk, access, vid, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
ivid, isrc, every = int(sys.argv[5]), socket.inet_aton(sys.argv[6]), float(sys.argv[7])
SOL_PACKET, PACKET_AUXDATA, VLAN_VALID = 263, 8, 1 << 4
def csum(b):
    s = sum((b[i] << 8) + b[i + 1] for i in range(0, len(b), 2))
    while s > 0xffff: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
igmp = bytearray([0x11, 10, 0, 0, 0, 0, 0, 0]); c = csum(igmp); igmp[2] = c >> 8; igmp[3] = c & 255
iph = bytearray([0x45, 0, 0, 28, 0, 0, 0, 0, 1, 2, 0, 0]) + isrc + socket.inet_aton("224.0.0.1")
c = csum(iph); iph[10] = c >> 8; iph[11] = c & 255
query = (bytes([1, 0, 0x5e, 0, 0, 1, 2, 0, 0, 0x26, 0, 0x50]) + struct.pack("!HH", 0x8100, ivid) + b"\x08\x00" + bytes(iph) + bytes(igmp)).ljust(64, b"\0")
t = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)); t.bind((trunk, 0))
t.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
a = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)); a.bind((access, 0))
counts = {}
print("ready", flush=True)
t0 = time.monotonic(); next_q = t0 + 0.5
while time.monotonic() - t0 < secs:
    now = time.monotonic()
    if now >= next_q:
        t.send(query); next_q = now + every
    r, _, _ = select.select([t, a], [], [], 0.05)
    if a in r:
        b, addr = a.recvfrom(65535)
        if addr[2] != 4: t.send(b[:12] + struct.pack("!HH", 0x8100, vid) + b[12:])
    if t in r:
        b, anc, _f, addr = t.recvmsg(65535, socket.CMSG_SPACE(64))
        if addr[2] == 4: continue
        v = 0
        for level, typ, cd in anc:
            if level == SOL_PACKET and typ == PACKET_AUXDATA and len(cd) >= 20:
                st, _l, _s, _m, _n, tci, _tp = struct.unpack("IIIHHHH", cd[:20])
                if st & VLAN_VALID: v = tci & 0xfff
        if v == 0 and len(b) >= 18 and b[12:14] == b"\x81\x00":
            v = struct.unpack("!H", b[14:16])[0] & 0xfff; b = b[:12] + b[16:]
        if v == vid: a.send(b)
        if len(b) >= 34 and b[12:14] == b"\x08\x00" and b[23] == 2:
            o = 14 + (b[14] & 15) * 4
            if len(b) > o:
                kind = "query" if b[o] == 0x11 else "report" if b[o] in (0x12, 0x16, 0x17, 0x22) else None
                if kind == "query" and b[26:30] == isrc: kind = None
                if kind: counts["%d:%s" % (v, kind)] = counts.get("%d:%s" % (v, kind), 0) + 1
print(json.dumps(counts), flush=True)
`;

describe.skipIf(!support.ok)("multicast per VLAN" + skipNote, () => {
  let lab: Lab;
  const config = (extra: { vif1?: Record<string, unknown>; bridge?: Record<string, unknown> } = {}): object => ({
    control_socket: lab.socketPath,
    bridges: [{
      name: "xenbr0",
      multicast_querier: true,
      multicast_querier_ipv4: "198.18.26.100",
      multicast_query_interval: 2,
      multicast_query_response_interval: 1,
      multicast_last_member_interval: 0.5,
      ...extra.bridge,
      uplink: { interface: "peth0", trunk: [10, 20, 30] },
      ports: [{ name: "vif1.0", kind: "attach", vlan: 10, ...extra.vif1 }, { name: "vif2.0", kind: "attach", vlan: 20 }],
    }],
  });

  beforeAll(async () => {
    lab = new Lab("mvlan");
    for (const node of ["dom0", "up", "a10", "b20", "t30"]) await lab.addNs(node);
    await lab.exec("dom0", ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1"]);
    await lab.exec("up", ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1"]);
    for (const [h, vif, ip] of [["a10", "vif1.0", "198.18.26.1"], ["b20", "vif2.0", "198.18.26.2"]] as const) {
      await lab.addVeth("dom0", vif, h, "eth0");
      await lab.ip("dom0", ["link", "set", "dev", vif, "up"]);
      await lab.configureHost(h, "eth0", ip);
    }
    await lab.addVeth("dom0", "peth0", "up", "eth0");
    await lab.ip("dom0", ["link", "set", "dev", "peth0", "up"]);
    await lab.addVeth("up", "sw30", "t30", "eth0");
    for (const i of ["eth0", "sw30"]) {
      await lab.ip("up", ["link", "set", "dev", i, "up"]);
      await lab.exec("up", ["ethtool", "-K", i, "rxvlan", "off", "txvlan", "off"]).catch(() => undefined);
    }
    await lab.configureHost("t30", "eth0", "198.18.26.3");
    for (const h of ["a10", "b20", "t30"]) await lab.exec(h, ["sysctl", "-qw", "net.ipv4.conf.eth0.force_igmp_version=3"]);
    lab.writeConfig(config());
    await lab.startDaemon("dom0");
  }, 120_000);

  afterAll(() => destroyLab(lab));

  it("router port per VLAN, querier per VLAN: a host in a trunk-only VLAN stays a member; a query in VLAN 10 silences VLAN 10 only", async () => {
    const secs = 13;
    const relay = lab.spawn("up", [PYTHON, "-c", PY_RELAY, "eth0", "sw30", "30", String(secs), "10", "198.18.26.50", "2"], "relay up");
    await relay.waitForOutput("ready");
    const members = [["a10", "239.26.0.10"], ["b20", "239.26.0.20"], ["t30", "239.26.0.30"]].map(([h, g]) => lab.spawn(h, [PYTHON, "-c", PY_JOIN, g, String(secs)], `member ${h}`));
    for (const m of members) await m.waitForOutput("ready");
    // more than twice the membership interval (5 s) after the joins' unsolicited reports
    await sleep(11_000);
    const show = await lab.cliJson<MdbShow>(["mdb", "show", "xenbr0"]);
    await relay.wait(secs * 1000 + 10_000);
    for (const m of members) await m.wait(secs * 1000 + 10_000);
    const counts = JSON.parse(relay.stdout.trim().split("\n").pop() ?? "{}") as Record<string, number>;
    const diag = `${JSON.stringify({ counts, show })}\n${lab.daemonLog(30)}`;
    const entries = show.entries.map((e) => [e.vlan, e.group, e.port]);
    // t30 (VLAN 30, reached only through the trunk) answered tapbridge's tagged queries and is still a member
    expect(entries, diag).toEqual(expect.arrayContaining([[10, "239.26.0.10", "vif1.0"], [20, "239.26.0.20", "vif2.0"], [30, "239.26.0.30", "peth0"]]));
    expect(counts["30:query"] ?? 0, diag).toBeGreaterThan(2);
    // the relay's queries in VLAN 10 made peth0 a router port for VLAN 10 only
    expect(show.router_ports.map((r) => [r.vlan, r.port, r.kind]), diag).toEqual([[10, "peth0", "auto"]]);
    expect(counts["10:report"] ?? 0, diag).toBeGreaterThan(0);
    expect(counts["20:report"] ?? 0, diag).toBe(0);
    // the lower-addressed querier in VLAN 10 did not silence VLANs 20 and 30
    const q = Object.fromEntries(show.querier.vlans.map((v) => [v.vlan, v.ipv4.querier]));
    expect(q, diag).toEqual({ 10: "other", 20: "self", 30: "self" });
  }, 60_000);

  it("a reload that changes only multicast keys applies in place: ports, counters, FDB and the still valid MDB stay", async () => {
    const members = [["a10", "239.26.1.10"], ["b20", "239.26.1.20"]].map(([h, g]) => lab.spawn(h, [PYTHON, "-c", PY_JOIN, g, "8"], `member ${h}`));
    for (const m of members) await m.waitForOutput("ready");
    await sleep(1500);
    type Stats = { ports: { name: string; rx_packets: number }[] }[];
    type Mac = { port: string; mac: string; vlan: number };
    const macs = (l: Mac[]): string[] => l.filter((e) => e.port !== "peth0").map((e) => `${e.vlan} ${e.mac} ${e.port}`).sort();
    const rx = (st: Stats): Record<string, number> => Object.fromEntries(st[0].ports.map((p) => [p.name, p.rx_packets]));
    const before = { macs: macs(await lab.cliJson<Mac[]>(["showmacs", "xenbr0"])), rx: rx(await lab.cliJson<Stats>(["stats"])), mdb: await lab.cliJson<MdbShow>(["mdb", "show", "xenbr0"]) };
    expect(before.mdb.entries.map((e) => [e.vlan, e.group, e.port]), JSON.stringify(before)).toEqual(expect.arrayContaining([[10, "239.26.1.10", "vif1.0"], [20, "239.26.1.20", "vif2.0"]]));
    expect(before.macs.length, JSON.stringify(before)).toBeGreaterThanOrEqual(2);
    const next = join(lab.dir, "next.yaml");
    writeFileSync(next, JSON.stringify({ ...config({ bridge: { multicast_vlans: [{ vlan: 20, multicast_snooping: false }] }, vif1: { multicast_router: "always" } }), state_dir: lab.stateDir }));
    const dry = await lab.cli(["reload", "--config", next, "--dry-run"]);
    expect(dry.stdout.trim().split("\n"), dry.stderr).toEqual([
      '~ bridge xenbr0 multicast_vlans default -> [{"vlan":20,"multicast_snooping":false}]',
      "~ port xenbr0/vif1.0 multicast_router default -> always",
    ]);
    const r = await lab.cli(["reload", "--config", next]);
    expect(r.code, `${r.stdout}\n${r.stderr}\n${lab.daemonLog(20)}`).toBe(0);
    const after = { macs: macs(await lab.cliJson<Mac[]>(["showmacs", "xenbr0"])), rx: rx(await lab.cliJson<Stats>(["stats"])), mdb: await lab.cliJson<MdbShow>(["mdb", "show", "xenbr0"]) };
    for (const m of members) await m.wait(20_000);
    const diag = `${JSON.stringify({ before, after })}\n${lab.daemonLog(20)}`;
    // nothing re-created: the learnt MACs and the ports' counters are still there
    expect(after.macs, diag).toEqual(expect.arrayContaining(before.macs));
    for (const [port, n] of Object.entries(before.rx)) expect(after.rx[port], `${port}: ${diag}`).toBeGreaterThanOrEqual(n);
    // the MDB kept VLAN 10's membership and lost VLAN 20's (snooping off there); the new router mode is in force
    const entries = after.mdb.entries.map((e) => [e.vlan, e.group, e.port]);
    expect(entries, diag).toContainEqual([10, "239.26.1.10", "vif1.0"]);
    expect(entries.filter((e) => e[0] === 20), diag).toEqual([]);
    expect(after.mdb.router_ports.map((x) => [x.vlan, x.port, x.kind]), diag).toContainEqual([null, "vif1.0", "always"]);
    expect(after.mdb.querier.vlans.map((v) => v.vlan), diag).not.toContain(20);
  }, 60_000);
});

/**
 * Source member: argv group, source, local address, seconds: joins (source, group) on eth0 (IP_ADD_SOURCE_MEMBERSHIP),
 * prints "ready"; on SIGUSR1 leaves (the kernel sends BLOCK_OLD_SOURCES {source}) and prints "left"; exits after
 * `seconds`.
 */
const PY_SOURCE_JOIN = String.raw`
import signal, socket, sys, time
group, source, local, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
IP_ADD_SOURCE_MEMBERSHIP, IP_DROP_SOURCE_MEMBERSHIP = 39, 40
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
# struct ip_mreq_source: group, local interface address, source
mreq = socket.inet_aton(group) + socket.inet_aton(local) + socket.inet_aton(source)
s.setsockopt(socket.IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP, mreq)
left = []
def leave(_sig, _frame):
    if not left:
        s.setsockopt(socket.IPPROTO_IP, IP_DROP_SOURCE_MEMBERSHIP, mreq); left.append(1); print("left", flush=True)
signal.signal(signal.SIGUSR1, leave)
print("ready", flush=True)
t0 = time.monotonic()
while time.monotonic() - t0 < secs: time.sleep(0.05)
`;

//   x1 eth0 198.18.27.1 --+
//                         +-- sw: kernel bridge br0 (mcast_snooping 0) -- eth0 ~~ vif1.0 -- dom0: tapbridge xenbr0
//   x2 eth0 198.18.27.2 --+                                                         (querier 198.18.27.100, query
//                                                                                    interval 60 s, LMQT 2 x 1 s)
// Two IGMPv3 hosts behind one port both want (S1, G); x2 leaves S1 (BLOCK_OLD_SOURCES), x1 still wants it.
describe.skipIf(!support.ok)("group-and-source-specific queries with kernel hosts" + skipNote, () => {
  let lab: Lab;
  const S1 = "198.18.27.9";
  const G = "232.27.0.1";

  beforeAll(async () => {
    lab = new Lab("mgsq");
    for (const node of ["dom0", "sw", "x1", "x2"]) await lab.addNs(node);
    await lab.exec("dom0", ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1"]);
    await lab.exec("sw", ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1"]);
    await lab.addVeth("dom0", "vif1.0", "sw", "eth0");
    await lab.ip("dom0", ["link", "set", "dev", "vif1.0", "up"]);
    await lab.ip("sw", ["link", "add", "br0", "type", "bridge", "mcast_snooping", "0"]);
    await lab.ip("sw", ["link", "set", "dev", "eth0", "master", "br0"]);
    await lab.ip("sw", ["link", "set", "dev", "eth0", "up"]);
    for (const [h, ip] of [["x1", "198.18.27.1"], ["x2", "198.18.27.2"]] as const) {
      await lab.addVeth("sw", `p${h}`, h, "eth0");
      await lab.ip("sw", ["link", "set", "dev", `p${h}`, "master", "br0"]);
      await lab.ip("sw", ["link", "set", "dev", `p${h}`, "up"]);
      await lab.configureHost(h, "eth0", ip);
      await lab.exec(h, ["sysctl", "-qw", "net.ipv4.conf.eth0.force_igmp_version=3"]);
    }
    await lab.ip("sw", ["link", "set", "dev", "br0", "up"]);
    lab.writeConfig({
      control_socket: lab.socketPath,
      bridges: [{
        name: "xenbr0",
        multicast_querier: true,
        multicast_querier_ipv4: "198.18.27.100",
        multicast_query_interval: 60,
        multicast_query_response_interval: 1,
        multicast_last_member_interval: 1,
        ports: [{ name: "vif1.0", kind: "attach" }],
      }],
    });
    await lab.startDaemon("dom0");
  }, 60_000);

  afterAll(() => destroyLab(lab));

  it("a host that still wants S1 answers the (G, S1) queries after the other host's BLOCK, and (S1, G) stays", async () => {
    const x1 = lab.spawn("x1", [PYTHON, "-c", PY_SOURCE_JOIN, G, S1, "198.18.27.1", "30"], "x1 (S1, G)");
    const x2 = lab.spawn("x2", [PYTHON, "-c", PY_SOURCE_JOIN, G, S1, "198.18.27.2", "30"], "x2 (S1, G), leaves");
    await x1.waitForOutput("ready");
    await x2.waitForOutput("ready");
    const row = (s: MdbShow): MdbShow["entries"][number] | undefined => s.entries.find((e) => e.group === G && e.source === S1);
    // the joins' unsolicited reports, or at the latest the answers to the second startup query (15 s after the start)
    const joined = await waitFor(async () => {
      const s = await lab.cliJson<MdbShow>(["mdb", "show", "xenbr0"]);
      return row(s) !== undefined ? s : null;
    }, 20_000, 250);
    expect(joined, lab.daemonLog(20)).not.toBeNull();
    // x2 leaves: S1's timer drops to 2 s; without an answer it is gone 2 s later (the next general query is 75 s after
    // the start)
    x2.kill("SIGUSR1");
    await x2.waitForOutput("left");
    await sleep(4500);
    const show = await lab.cliJson<MdbShow>(["mdb", "show", "xenbr0"]);
    x1.kill();
    x2.kill();
    await x1.wait(15_000);
    await x2.wait(15_000);
    const diag = `${JSON.stringify(show)}\n${lab.daemonLog(30)}`;
    expect(show.querier.source_queries_sent, diag).toBeGreaterThan(0);
    const r = row(show);
    expect(r, diag).toBeDefined();
    expect(r!.mode, diag).toBe("include");
    // refreshed by x1's answer to the membership interval (2 x 60 s + 1 s), not left at the last member query time
    expect(r!.timer_s, diag).toBeGreaterThan(100);
  }, 60_000);
});
