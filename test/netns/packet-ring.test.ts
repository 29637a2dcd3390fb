// PACKET_MMAP rings on AF_PACKET ports (issue 23 section 2), at the addon level: a node script in its own namespace
// drives two PacketPorts on the ends of one veth pair, one on rings and one on the recvmsg/sendmmsg path, and reports
// what each side saw. Needs root and `ip netns`.
//
//   ns:  ra (PacketPort on rings: 64 rx slots, 64 tx slots of 2048 bytes, or no tx ring: tx_frames 0) <==veth==> pb (PacketPort, packet_mmap off)
//        MTU 9000 on both ends, IPv6 off (the veths send nothing of their own); test frames carry ethertype 0x88b5
//
// Scenarios (SCRIPT, one JSON line each):
//   wrap     300 frames each way in bursts of 20 (the rings wrap four times): all arrive, in order
//   big      small, 4000-byte, small frames each way: the big one does not fit a slot; rx takes it from the socket
//            queue (TP_STATUS_COPY) and tx sends it through the companion socket; all arrive whole and in order
//   vlan     an 802.1Q (VID 100) and an 802.1ad (VID 200) tagged frame into the ring: the tags the kernel moved into
//            the slot's header are put back with the right TPID
//   full     ra stops reading; 200 frames arrive for 64 slots: 64 are kept, 136 counted as socket drops; reading
//            again delivers the 64, and 50 more frames after them arrive (nothing stalls)
//   tap      300 frames of 1000 bytes from a socket with rings on a TAP into its queue, read only afterwards: the
//            64-slot tx ring is reused 4 times while frames still wait in the TAP; every frame arrives intact
//   reuse    the same towards pb while pb does not read (its socket queue holds the frames)
//   bypass   pb's egress gets a qdisc that drops every frame (pfifo limit 0); 10 frames from a socket opened with
//            qdisc_bypass and rings off (sendmmsg), 10 from one with bypass and a tx ring, 10 from pb (no bypass):
//            only the 20 that bypassed the qdisc reach ra; closing the two ports leaves no fd behind
//   adopt    ra receives 10 frames (its head is past slot 0), its fd is duplicated and adopted as a new port, the
//            first is closed; 100 more frames each way go through the adopted rings in order

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { destroyLab, Lab, REPO_ROOT, canRunNetns } from "./helpers.js";

const support = canRunNetns();
const skipNote = support.ok ? "" : ` (skipped: ${support.reason})`;

const SCRIPT = String.raw`
const { PacketPort, RxSlab, packetRing, unixSocket, netdev } = await import(process.argv[2]);
const scenario = process.argv[3];
const TYPE = 0x88b5;
const TX_AREA = 3 * 1024 * 1024; // tx frames are built here; rx batches of small frames stay far below
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

packetRing.set({ enabled: false, rx_frames: 64, tx_frames: 64, frame_bytes: 2048, qdisc_bypass: false });
const pb = PacketPort.openPacket("pb", { rcvbuf: 4 << 20, sndbuf: 4 << 20 });
const txFrames = Number(process.argv[4] ?? 64);
packetRing.set({ enabled: true, rx_frames: 64, tx_frames: txFrames, frame_bytes: 2048, qdisc_bypass: false });
let ra = PacketPort.openPacket("ra", { rcvbuf: 4 << 20, sndbuf: 4 << 20 });
const slab = RxSlab.get();

function frame(seq, len, tag) {
  const f = new Uint8Array(len);
  f.fill(0xff, 0, 6);
  f.set([2, 0, 0, 0, 0, 1], 6);
  let p = 12;
  if (tag) { f[p] = tag.tpid >> 8; f[p + 1] = tag.tpid & 255; f[p + 2] = tag.vid >> 8; f[p + 3] = tag.vid & 255; p += 4; }
  f[p] = TYPE >> 8; f[p + 1] = TYPE & 255;
  new DataView(f.buffer).setUint32(p + 2, seq);
  for (let i = p + 6; i < len; i++) f[i] = (seq + i) & 255;
  return f;
}
function send(port, frames) {
  let pos = TX_AREA;
  frames.forEach((f, i) => {
    slab.bytes.fill(0, pos, pos + 10);           // vnet header: no GSO, no checksum
    slab.bytes.set(f, pos + 10);
    port.tx.set([pos + 10, f.length, 0, 0], 4 * i);
    pos += 10 + f.length + 16 - ((10 + f.length) % 16);
  });
  return port.send(frames.length);
}
function collector(port) {
  const got = [];
  port.start((bytes, desc, count) => {
    for (let i = 0; i < count; i++) {
      const f = bytes.slice(desc[3 * i], desc[3 * i] + desc[3 * i + 1]);
      const tagged = f[12] === 0x81 || f[12] === 0x88 && f[13] === 0xa8;
      const p = tagged ? 16 : 12;
      if (f[p] !== TYPE >> 8 || f[p + 1] !== (TYPE & 255)) continue;
      const seq = new DataView(f.buffer).getUint32(p + 2);
      let intact = true;
      for (let j = p + 6; j < f.length; j++) if (f[j] !== ((seq + j) & 255)) { intact = false; break; }
      got.push({ seq, len: f.length, flags: desc[3 * i + 2], tpid: tagged ? (f[12] << 8) | f[13] : 0, vid: tagged ? ((f[14] << 8) | f[15]) & 0xfff : -1, intact });
    }
  }, (errno, syscall) => { got.push({ error: errno, syscall }); });
  return got;
}
async function waitCount(arr, n, ms = 5000) {
  const end = Date.now() + ms;
  while (arr.length < n && Date.now() < end) await sleep(10);
  await sleep(50);
}
const inOrder = (arr, from, n) => arr.length === n && arr.every((g, i) => g.seq === from + i && g.intact);

const out = { ring: ra.ringInfo(), plain: pb.ringInfo() };
const atA = collector(ra), atB = collector(pb);

async function burst(src, dst, from, n, size = 60) {
  for (let s = from; s < from + n; s += 20) {
    const k = Math.min(20, from + n - s);
    send(src, Array.from({ length: k }, (_, i) => frame(s + i, size)));
    await sleep(5);
  }
}

if (scenario === "wrap") {
  await burst(pb, ra, 1, 300);
  await burst(ra, pb, 1, 300);
  await waitCount(atA, 300);
  await waitCount(atB, 300);
  out.rx = { n: atA.length, ordered: inOrder(atA, 1, 300) };
  out.tx = { n: atB.length, ordered: inOrder(atB, 1, 300) };
} else if (scenario === "big") {
  const fr = [frame(1, 60), frame(2, 4000), frame(3, 60)];
  out.sentB = send(pb, fr);
  await waitCount(atA, 3);
  out.sentA = send(ra, fr);
  await waitCount(atB, 3);
  out.rx = atA.map((g) => [g.seq, g.len, g.intact]);
  out.tx = atB.map((g) => [g.seq, g.len, g.intact]);
} else if (scenario === "vlan") {
  send(pb, [frame(1, 64, { tpid: 0x8100, vid: 100 }), frame(2, 64, { tpid: 0x88a8, vid: 200 })]);
  await waitCount(atA, 2);
  out.rx = atA.map((g) => [g.seq, g.len, g.tpid, g.vid, g.flags, g.intact]);
} else if (scenario === "full") {
  ra.stop();
  await burst(pb, ra, 1, 200);
  await sleep(200);
  out.drops = ra.readSocketDrops();
  ra.resume();
  await waitCount(atA, 64);
  out.first = { n: atA.length, ordered: inOrder(atA, 1, 64) };
  await burst(pb, ra, 1001, 50);
  await waitCount(atA, 114);
  out.after = { n: atA.length - 64, ordered: inOrder(atA.slice(64), 1001, 50) };
} else if (scenario === "reuse") {
  pb.stop();
  await burst(ra, pb, 1, 300);
  await sleep(100);
  pb.resume();
  await waitCount(atB, 300);
  out.tx = { n: atB.length, ordered: inOrder(atB, 1, 300), bad: atB.filter((g) => !g.intact).length };
} else if (scenario === "tap") {
  const tap = PacketPort.openTap("tq", { persist: false, owner: -1, group: -1 });
  netdev.setLinkUp("tq", true);
  const rt = PacketPort.openPacket("tq", { rcvbuf: 4 << 20, sndbuf: 4 << 20 });
  for (let s = 1; s <= 300; s += 20) { send(rt, Array.from({ length: 20 }, (_, i) => frame(s + i, 1000))); await sleep(2); }
  await sleep(100);
  const atT = collector(tap);
  await waitCount(atT, 300);
  out.tx = { n: atT.length, ordered: inOrder(atT, 1, 300), bad: atT.filter((g) => !g.intact).length, seqs: atT.slice(0, 5).map((g) => g.seq) };
  rt.close();
  tap.close();
} else if (scenario === "bypass") {
  const { execFileSync } = await import("node:child_process");
  const { readdirSync } = await import("node:fs");
  execFileSync("tc", ["qdisc", "add", "dev", "pb", "root", "pfifo", "limit", "0"]);
  const fdsBefore = readdirSync("/proc/self/fd").length; // after the first child: libuv's signal pipe is open
  packetRing.set({ enabled: false, rx_frames: 64, tx_frames: 0, frame_bytes: 2048, qdisc_bypass: true });
  const plain = PacketPort.openPacket("pb", { rcvbuf: 1 << 20, sndbuf: 1 << 20 });
  packetRing.set({ enabled: true, rx_frames: 64, tx_frames: 64, frame_bytes: 2048, qdisc_bypass: true });
  const ringed = PacketPort.openPacket("pb", { rcvbuf: 1 << 20, sndbuf: 1 << 20 });
  try {
    send(plain, Array.from({ length: 10 }, (_, i) => frame(1 + i, 60)));
    send(ringed, Array.from({ length: 10 }, (_, i) => frame(101 + i, 60)));
    send(pb, Array.from({ length: 10 }, (_, i) => frame(201 + i, 60)));
    await waitCount(atA, 30, 1000);
  } finally {
    execFileSync("tc", ["qdisc", "del", "dev", "pb", "root"]);
  }
  out.rx = atA.map((g) => g.seq);
  out.ringed = ringed.ringInfo() !== null;
  plain.close();
  ringed.close();
  out.fdsLeft = readdirSync("/proc/self/fd").length - fdsBefore;
} else if (scenario === "adopt") {
  await burst(pb, ra, 1, 10);
  await waitCount(atA, 10);
  out.before = atA.length;
  const fd = unixSocket.dup(ra.fd);
  const ra2 = PacketPort.adopt(fd, "packet", "ra", 0);
  out.adopted = ra2.ringInfo();
  ra.close();
  ra = ra2;
  const atA2 = collector(ra2);
  await burst(pb, ra2, 11, 100);
  await burst(ra2, pb, 1, 100);
  await waitCount(atA2, 100);
  await waitCount(atB, 100);
  out.rx = { n: atA2.length, ordered: inOrder(atA2, 11, 100) };
  out.tx = { n: atB.length, ordered: inOrder(atB, 1, 100) };
}
out.counters = { ra: Array.from(ra.counters), pb: Array.from(pb.counters) };
ra.close();
pb.close();
console.log(JSON.stringify(out));
`;

describe.skipIf(!support.ok)("PACKET_MMAP rings on an AF_PACKET port" + skipNote, () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = new Lab("ring");
    await lab.addNs("ns");
    await lab.exec("ns", ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]);
    await lab.ip("ns", ["link", "add", "ra", "mtu", "9000", "type", "veth", "peer", "name", "pb", "mtu", "9000"]);
    await lab.ip("ns", ["link", "set", "ra", "up"]);
    await lab.ip("ns", ["link", "set", "pb", "up"]);
  }, 60_000);

  afterAll(() => destroyLab(lab));

  async function scenario(name: string, txFrames = 64): Promise<Record<string, any>> {
    const script = join(lab.dir, "ring.mjs");
    writeFileSync(script, SCRIPT);
    const r = await lab.exec("ns", [process.execPath, script, join(REPO_ROOT, "dist/io/native.js"), name, String(txFrames)], { check: false, timeoutMs: 60_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    return JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, any>;
  }

  it("the socket has TPACKET_V2 rings of the configured geometry; the other is on recvmsg", async () => {
    const r = await scenario("wrap");
    expect(r.ring).toEqual({ version: 2, frame_bytes: 2048, block_bytes: 65536, rx_frames: 64, tx_frames: 64, mapped_bytes: 4 * 65536, rx_resets: 0, rx_reset_failures: 0 });
    expect(r.plain).toBeNull();
  }, 90_000);

  it("frames wrap the rx and tx rings several times and arrive complete and in order", async () => {
    const r = await scenario("wrap");
    expect(r.rx).toEqual({ n: 300, ordered: true });
    expect(r.tx).toEqual({ n: 300, ordered: true });
  }, 90_000);

  it("with tx_frames 0 the socket has an rx ring only and sends with sendmmsg; frames wrap the rx ring in order", async () => {
    const r = await scenario("wrap", 0);
    expect(r.ring).toMatchObject({ version: 2, rx_frames: 64, tx_frames: 0, mapped_bytes: 2 * 65536 });
    expect(r.rx).toEqual({ n: 300, ordered: true });
    expect(r.tx).toEqual({ n: 300, ordered: true });
  }, 90_000);

  it("a frame larger than a slot is received through the socket queue and sent through the companion socket, in order", async () => {
    const r = await scenario("big");
    expect(r.sentA).toBe(3);
    expect(r.rx).toEqual([[1, 60, true], [2, 4000, true], [3, 60, true]]);
    expect(r.tx).toEqual([[1, 60, true], [2, 4000, true], [3, 60, true]]);
  }, 90_000);

  it("VLAN tags stripped into the slot header are restored with their TPID (802.1Q and 802.1ad)", async () => {
    const r = await scenario("vlan");
    expect(r.rx).toEqual([[1, 64, 0x8100, 100, 1, true], [2, 64, 0x88a8, 200, 1, true]]);
  }, 90_000);

  it("a full rx ring keeps its 64 frames, counts the rest as socket drops, and flows again", async () => {
    const r = await scenario("full");
    expect(r.drops).toBe(136);
    expect(r.first).toEqual({ n: 64, ordered: true });
    expect(r.after).toEqual({ n: 50, ordered: true });
  }, 90_000);

  it("frames sent from a 64-slot tx ring into a TAP nobody reads yet stay intact after their slots are reused", async () => {
    const r = await scenario("tap");
    expect(r.tx).toMatchObject({ n: 300, ordered: true, bad: 0 });
  }, 90_000);

  it("frames sent from a 64-slot tx ring to a socket that reads them late stay intact after their slots are reused", async () => {
    const r = await scenario("reuse");
    expect(r.tx).toEqual({ n: 300, ordered: true, bad: 0 });
  }, 90_000);

  it("qdisc_bypass skips the netdev's qdisc on the sendmmsg path (rings off) and on the tx ring", async () => {
    const r = await scenario("bypass");
    expect(r.ringed).toBe(true);
    expect(r.fdsLeft).toBe(0); // each port's receiving and send sockets are closed with it
    expect(r.rx).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110]);
  }, 90_000);

  it("an adopted socket maps its rings with the stamped geometry and goes on from the kernel's positions", async () => {
    const r = await scenario("adopt");
    expect(r.before).toBe(10);
    expect(r.adopted).toMatchObject({ version: 2, rx_frames: 64, tx_frames: 64 });
    expect(r.rx).toEqual({ n: 100, ordered: true });
    expect(r.tx).toEqual({ n: 100, ordered: true });
  }, 90_000);
});
