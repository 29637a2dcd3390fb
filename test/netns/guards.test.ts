// Privileged end-to-end test of the RA and DHCP guards against real clients (issue 20 §1). A rogue guest on a
// guarded port answers the victim's busybox udhcpc as a DHCP server (plain 67 -> 68, from source port 6767, behind an
// 802.1ad VID 0 tag) and sends router advertisements (plain, 88a8 VID 0, 8100 VID 0 + 88a8 VID 0, and on an access
// port with allow_stacked). The victim must take no lease and gain no IPv6 route. The same rogue scripts run from an
// unguarded port first show that each form does reach the victim's kernel: udhcpc binds, `ip -6 route` gains the
// route (so each guarded case can fail). A locked guest whose lock lists 0x88a8 in allow_ethertypes hides an ARP
// request for a foreign sender address behind 88a8 VID 0: the victim's neighbour table must not learn it. A DHCPv6
// advertise from UDP port 5470 to 546 (plain and behind 88a8 VID 0) must not reach the victim's interface (no DHCPv6
// client here: tcpdump in the victim checks the frames).
// Needs root, `ip netns` and busybox udhcpc; skips with the reason otherwise. Nothing touches the root namespace.
//
//   xenbr0 (default ports):
//     rogue  eth0 (TAP vif1.0, ra_guard + dhcp_guard) --+
//     router eth0 (TAP vif4.0, no guards: the controls) -+- xenbr0
//     locked eth0 (TAP vif3.0, lock: LOCKED_MAC, 198.18.70.30, allow_ethertypes 0x88a8) --+
//     victim eth0 (TAP vif2.0, udhcpc, accept_ra=1) ----+
//   xenbr1 (access ports, pvid 10):
//     rogue  eth1 (TAP vif1.1, ra_guard + dhcp_guard, allow_stacked: true) --+- xenbr1
//     victim eth1 (TAP vif2.1, accept_ra=1) ----------------------------------+

import { execFileSync } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { destroyLab, Lab, PYTHON, canRunNetns, sleep, waitFor } from "./helpers.js";
import { dropDeltas, portDrops, sendRaw, startCapture, withMarker } from "./capture.js";
import { arp, ipv6, mac, udp } from "../support/frames.js";

function udhcpcProblem(): string | null {
  try {
    const list = execFileSync("busybox", ["--list"], { encoding: "utf8" }).split("\n");
    return list.includes("udhcpc") ? null : "busybox has no udhcpc";
  } catch {
    return "busybox is not installed (scripts/setup-test-deps.sh installs busybox-static)";
  }
}
const netns = canRunNetns();
const bbProblem = netns.ok ? udhcpcProblem() : null;
const support = !netns.ok ? netns : bbProblem !== null ? { ok: false, reason: bbProblem } : netns;
if (!support.ok) console.warn(`netns guards test skipped: ${support.reason}`);
const skipNote = support.ok ? "" : ` (skipped: ${support.reason})`;

const ROGUE_MAC = "02:00:00:70:00:66";
const ROUTER_MAC = "02:00:00:70:00:01";
const VICTIM_MAC = "02:00:00:70:00:20";
const LOCKED_MAC = "02:00:00:70:00:30";
const VICTIM_IP = "198.18.70.20";

/**
 * A rogue DHCPv4 server on a raw socket: answers DISCOVER with OFFER and REQUEST with ACK (lease LEASE_IP, router
 * and DNS ROGUE_IP) from UDP SPORT, every reply behind the hex TAGS ("" = untagged). Args: IFNAME SPORT TAGS SECONDS
 * LEASE_IP ROGUE_IP. Prints "ready", then "offer" or "ack" for each reply it sent.
 */
const PY_ROGUE_DHCP = String.raw`
import socket, struct, sys, time
ifname, sport, tags, seconds = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3]), float(sys.argv[4])
lease, rogue = socket.inet_aton(sys.argv[5]), socket.inet_aton(sys.argv[6])
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((ifname, 0))
mymac = s.getsockname()[4]
print("ready", flush=True)
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    s.settimeout(max(0.02, deadline - time.monotonic()))
    try:
        data, addr = s.recvfrom(65536)
    except socket.timeout:
        break
    if addr[2] == socket.PACKET_OUTGOING or len(data) < 14 + 20 + 8 + 240 or data[12:14] != b"\x08\x00":
        continue
    ip = data[14:]; ihl = (ip[0] & 15) * 4
    if ip[9] != 17: continue
    udp = ip[ihl:]
    if struct.unpack("!H", udp[2:4])[0] != 67: continue
    bootp = udp[8:]
    if bootp[0] != 1 or bootp[236:240] != b"\x63\x82\x53\x63": continue
    opts, i, mtype = bootp[240:], 0, 0
    while i < len(opts) and opts[i] != 255:
        if opts[i] == 0: i += 1; continue
        if opts[i] == 53: mtype = opts[i + 2]
        i += 2 + opts[i + 1]
    if mtype not in (1, 3): continue
    reply_type = 2 if mtype == 1 else 5
    rep = bytearray(240)
    rep[0:4] = b"\x02\x01\x06\x00"; rep[4:8] = bootp[4:8]; rep[10:12] = bootp[10:12]
    rep[16:20] = lease; rep[20:24] = rogue; rep[28:44] = bootp[28:44]; rep[236:240] = b"\x63\x82\x53\x63"
    rep += bytes([53, 1, reply_type, 54, 4]) + rogue + bytes([51, 4]) + struct.pack("!I", 600)
    rep += bytes([1, 4, 255, 255, 255, 0, 3, 4]) + rogue + bytes([6, 4]) + rogue + bytes([255])
    bcast = b"\xff" * 4
    ulen = 8 + len(rep)
    pseudo = rogue + bcast + struct.pack("!BBH", 0, 17, ulen)
    uh = struct.pack("!HHHH", sport, 68, ulen, 0)
    uc = csum(pseudo + uh + bytes(rep)) or 0xffff
    uh = struct.pack("!HHHH", sport, 68, ulen, uc)
    iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, 0, 0, 64, 17, 0, rogue, bcast)
    iph = iph[:10] + struct.pack("!H", csum(iph)) + iph[12:]
    frame = b"\xff" * 6 + mymac + tags + b"\x08\x00" + iph + uh + bytes(rep)
    s.send(frame)
    print("offer" if reply_type == 2 else "ack", flush=True)
`;

/**
 * A rogue router: COUNT router advertisements (router lifetime 1800 s, prefix PREFIX/64 for SLAAC) from link-local
 * SRC to ff02::1, each behind the hex TAGS, 0.1 s apart. Args: IFNAME TAGS SRC PREFIX COUNT.
 */
const PY_ROGUE_RA = String.raw`
import socket, struct, sys, time
ifname, tags, src, prefix, count = sys.argv[1], bytes.fromhex(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
mymac = s.getsockname()[4]
srcb, dstb = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, "ff02::1")
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
ra += struct.pack("!BBBBIII", 3, 4, 64, 0xc0, 86400, 14400, 0) + socket.inet_pton(socket.AF_INET6, prefix)
ra += bytes([1, 1]) + mymac
c = csum(srcb + dstb + struct.pack("!IxxxB", len(ra), 58) + ra)
ra = ra[:2] + struct.pack("!H", c) + ra[4:]
ip6 = struct.pack("!IHBB", 0x60000000, len(ra), 58, 255) + srcb + dstb
frame = b"\x33\x33\x00\x00\x00\x01" + mymac + tags + b"\x86\xdd" + ip6 + ra
for i in range(count):
    s.send(frame)
    if i + 1 < count: time.sleep(0.1)
`;

interface DhcpForm {
  name: string;
  sport: number;
  tags: string;
}
const DHCP_FORMS: DhcpForm[] = [
  { name: "plain 67 -> 68", sport: 67, tags: "" },
  { name: "from source port 6767", sport: 6767, tags: "" },
  { name: "behind 88a8 VID 0", sport: 67, tags: "88a80000" },
];

interface RaForm {
  name: string;
  tags: string;
  /** the victim's interface (eth0 on xenbr0, eth1 on xenbr1) */
  dev: "eth0" | "eth1";
}
const RA_FORMS: RaForm[] = [
  { name: "plain", tags: "", dev: "eth0" },
  { name: "88a8 VID 0", tags: "88a80000", dev: "eth0" },
  { name: "8100 VID 0 + 88a8 VID 0", tags: "8100000088a80000", dev: "eth0" },
  { name: "88a8 VID 0 on an access port with allow_stacked", tags: "88a80000", dev: "eth1" },
];

describe.skipIf(!support.ok)("RA and DHCP guards against real clients (issue 20)" + skipNote, () => {
  let lab: Lab;
  let udhcpcScript: string;

  /** Runs udhcpc in the victim while PY_ROGUE_DHCP runs in `node`; returns the lines the client's script logged. */
  const dhcpRound = async (node: string, ifname: string, form: DhcpForm, key: string): Promise<{ bound: string; offers: number; rogue: string }> => {
    const log = join(lab.dir, `udhcpc-${key}.log`);
    writeFileSync(log, "");
    const rogue = lab.spawn(node, [PYTHON, "-c", PY_ROGUE_DHCP, ifname, String(form.sport), form.tags, "8", "198.18.70.66", "198.18.70.99"], `rogue dhcp ${key}`);
    await rogue.waitForOutput("ready");
    const r = await lab.exec("victim", ["busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "3", "-T", "1", "-s", udhcpcScript], {
      check: false, timeoutMs: 20_000, env: { ...process.env, UDHCPC_LOG: log },
    });
    await rogue.stop();
    return {
      bound: readFileSync(log, "utf8").trim(),
      offers: rogue.stdout.split("\n").filter((l) => l === "offer").length,
      rogue: `udhcpc exit ${r.code}: ${r.stdout}${r.stderr}\nrogue: ${rogue.stdout}${rogue.stderr}`,
    };
  };

  const routes = async (dev: string): Promise<string> => (await lab.ip("victim", ["-6", "route", "show", "dev", dev])).stdout;

  const raRound = async (node: string, ifname: string, form: RaForm, i: number): Promise<{ src: string; prefix: string }> => {
    const src = `fe80::70:${node === "router" ? "a" : "b"}${i}`;
    const prefix = `2001:db8:70:${node === "router" ? "a" : "b"}${i}::`;
    const r = await lab.exec(node, [PYTHON, "-c", PY_ROGUE_RA, ifname, form.tags, src, prefix, "3"], { check: false, timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`rogue RA in ${node}: ${r.stderr}`);
    return { src, prefix };
  };

  beforeAll(async () => {
    lab = new Lab("guards");
    for (const n of ["dom0", "rogue", "router", "victim", "locked"]) await lab.addNs(n);
    lab.writeConfig({
      control_socket: lab.socketPath,
      bridges: [
        {
          name: "xenbr0",
          port_defaults: { ra_guard: true, dhcp_guard: true },
          ports: [
            { name: "vif1.0" }, { name: "vif2.0" }, { name: "vif4.0", ra_guard: false, dhcp_guard: false },
            { name: "vif3.0", lock: { mac: LOCKED_MAC, ipv4: ["198.18.70.30"], allow_ethertypes: ["0x88a8"] } },
          ],
        },
        {
          name: "xenbr1",
          port_defaults: { ra_guard: true, dhcp_guard: true },
          ports: [{ name: "vif1.1", vlan: 10, allow_stacked: true }, { name: "vif2.1", vlan: 10 }],
        },
      ],
    });
    await lab.startDaemon("dom0");
    const links: [string, string, string, string][] = [
      ["vif1.0", "rogue", "eth0", ROGUE_MAC], ["vif1.1", "rogue", "eth1", "02:00:00:70:01:66"],
      ["vif4.0", "router", "eth0", ROUTER_MAC], ["vif3.0", "locked", "eth0", LOCKED_MAC],
      ["vif2.0", "victim", "eth0", VICTIM_MAC], ["vif2.1", "victim", "eth1", "02:00:00:70:01:20"],
    ];
    for (const [vif, node, ifname, m] of links) {
      if (!(await waitFor(() => lab.linkExists("dom0", vif), 10_000))) throw new Error(`no TAP ${vif}\n${lab.daemonLog()}`);
      await lab.moveLink("dom0", vif, node, ifname);
      // the victim is a real target: router advertisements accepted, no forwarding, no DAD delay
      const ra = node === "victim" ? "1" : "0";
      await lab.exec(node, ["sysctl", "-qw", `net.ipv6.conf.${ifname}.accept_ra=${ra}`, `net.ipv6.conf.${ifname}.accept_dad=0`,
        "net.ipv6.conf.all.forwarding=0"]);
      await lab.ip(node, ["link", "set", "dev", ifname, "address", m, "up"]);
    }
    await lab.ip("victim", ["addr", "add", `${VICTIM_IP}/24`, "dev", "eth0"]);
    udhcpcScript = join(lab.dir, "udhcpc.sh");
    // the client's script only records what it was given (no address is configured)
    writeFileSync(udhcpcScript, `#!/bin/sh\nif [ "$1" = bound ]; then echo "bound $ip router $router dns $dns" >> "$UDHCPC_LOG"; fi\nexit 0\n`);
    chmodSync(udhcpcScript, 0o755);
    // the victim's link-local is up (no DAD) before any RA
    await waitFor(async () => (await routes("eth0")).includes("fe80::/64") && (await routes("eth1")).includes("fe80::/64"), 5_000);
  }, 90_000);

  afterAll(() => destroyLab(lab));

  for (const form of DHCP_FORMS) {
    it(`udhcpc takes no lease from a rogue server behind a guarded port: ${form.name} (counted as dhcp_guard)`, async () => {
      const before = await portDrops(lab, "xenbr0", "vif1.0");
      const r = await dhcpRound("rogue", "eth0", form, `guarded-${form.sport}-${form.tags}`);
      expect(r.bound, `${form.name}: the victim took a lease\n${r.rogue}`).toBe("");
      // the rogue did answer (it saw the DISCOVERs) and the guard dropped every answer
      expect(r.offers, `${form.name}: the rogue never answered\n${r.rogue}`).toBeGreaterThan(0);
      expect(dropDeltas(before, await portDrops(lab, "xenbr0", "vif1.0")).dhcp_guard ?? 0, form.name).toBe(r.offers);
    }, 30_000);
  }

  it("control: the same rogue behind an unguarded port gives udhcpc its lease in every form (the guarded cases can fail)", async () => {
    for (const form of DHCP_FORMS) {
      const r = await dhcpRound("router", "eth0", form, `control-${form.sport}-${form.tags}`);
      expect(r.bound, `${form.name}\n${r.rogue}`).toBe("bound 198.18.70.66 router 198.18.70.99 dns 198.18.70.99");
    }
  }, 90_000);

  for (const [i, form] of RA_FORMS.entries()) {
    it(`the victim's \`ip -6 route\` gains no route from a rogue RA: ${form.name} (counted as ra_guard)`, async () => {
      const [bridge, port] = form.dev === "eth0" ? ["xenbr0", "vif1.0"] : ["xenbr1", "vif1.1"];
      const before = await portDrops(lab, bridge, port);
      const { src, prefix } = await raRound("rogue", form.dev, form, i);
      await sleep(500);
      const after = await routes(form.dev);
      expect(after, `${form.name}: route from the rogue RA`).not.toContain(src);
      expect(after, `${form.name}: prefix from the rogue RA`).not.toContain(prefix.slice(0, -2));
      expect(dropDeltas(before, await portDrops(lab, bridge, port)).ra_guard ?? 0, form.name).toBe(3);
    }, 20_000);
  }

  it("control: the same RAs from an unguarded port install the default route and the prefix (the guarded cases can fail)", async () => {
    for (const [i, form] of RA_FORMS.entries()) {
      if (form.dev !== "eth0") continue; // xenbr1 has no unguarded port; the guard code is the same
      const { src, prefix } = await raRound("router", "eth0", form, i);
      const ok = await waitFor(async () => {
        const r = await routes("eth0");
        return r.includes(`default via ${src}`) && r.includes(`${prefix}/64`);
      }, 5_000);
      expect(ok, `${form.name}: ${await routes("eth0")}`).toBe(true);
    }
  }, 60_000);

  /** An ARP request for the victim's address from `claimed` (sender MAC `m`) behind 88a8 VID 0, sent 3 times. */
  const arpBehindStag = (node: string, m: string, claimed: string): Promise<void> =>
    sendRaw(lab, node, [(mac("ff:ff:ff:ff:ff:ff") + mac(m) + "88a80000" + "0806" + arp(1, m, claimed, VICTIM_IP)).padEnd(120, "0")], 3);
  const neigh = async (addr: string): Promise<string> => (await lab.ip("victim", ["neigh", "show", addr])).stdout.trim();

  it("a locked port (allow_ethertypes 0x88a8) cannot hide an ARP for a foreign address behind 88a8 VID 0 (lock_arp)", async () => {
    const before = await portDrops(lab, "xenbr0", "vif3.0");
    await arpBehindStag("locked", LOCKED_MAC, "198.18.70.1");
    await sleep(500);
    expect(await neigh("198.18.70.1"), "the victim learned the spoofed sender").toBe("");
    expect(dropDeltas(before, await portDrops(lab, "xenbr0", "vif3.0")).lock_arp ?? 0).toBe(3);
  }, 20_000);

  it("control: the same ARP behind 88a8 VID 0 from an unlocked port enters the victim's neighbour table", async () => {
    await arpBehindStag("router", ROUTER_MAC, "198.18.70.2");
    const ok = await waitFor(async () => (await neigh("198.18.70.2")).includes(ROUTER_MAC), 3_000);
    expect(ok, await neigh("198.18.70.2")).toBe(true);
  }, 20_000);

  /** A DHCPv6 ADVERTISE from UDP 5470 to the victim's port 546 behind the hex TAGS, carrying MARKER. */
  const advertise = (m: string, tags: string, marker: string): string =>
    (mac(VICTIM_MAC) + mac(m) + tags + "86dd" +
      ipv6("fe80::70:66", "fe80::ff:fe70:20", 17, udp(5470, 546, "02123456" + Buffer.from(marker).toString("hex")))).padEnd(120, "0");

  it("a DHCPv6 advertise from port 5470 to 546, plain or behind 88a8 VID 0, does not reach the victim (dhcp_guard)", async () => {
    const forms = ["", "88a80000"];
    const cap = await startCapture(lab, "victim", "eth0", "victim-dhcpv6");
    const before = await portDrops(lab, "xenbr0", "vif1.0");
    const markers = forms.map((t) => `tbguard-${process.pid}-v6-${t || "plain"}`);
    await sendRaw(lab, "rogue", forms.map((t, i) => advertise(ROGUE_MAC, t, markers[i])), 3);
    // the control: the same frames from the unguarded port arrive
    const control = forms.map((t) => `tbguard-${process.pid}-v6-control-${t || "plain"}`);
    await sendRaw(lab, "router", forms.map((t, i) => advertise(ROUTER_MAC, t, control[i])), 3);
    await sleep(500);
    const frames = await cap.stop();
    for (const [i, t] of forms.entries()) {
      expect(withMarker(frames, markers[i]).length, `rogue advertise ${t || "plain"} reached the victim`).toBe(0);
      expect(withMarker(frames, control[i]).length, `control advertise ${t || "plain"} missing`).toBe(3);
    }
    expect(dropDeltas(before, await portDrops(lab, "xenbr0", "vif1.0")).dhcp_guard ?? 0).toBe(3 * forms.length);
  }, 30_000);

  it("the daemon logged no errors", () => {
    expect(lab.daemonErrors()).toEqual([]);
  });
});
