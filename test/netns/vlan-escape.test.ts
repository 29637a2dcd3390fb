// Privileged end-to-end test of VLAN isolation against hostile guests (issue 10, part 1). Guests send every VLAN
// escape we know from their own namespaces (raw AF_PACKET frames): VID 4095 from a trunk, an access port and a
// default port, the double-tag hop through the uplink's native VLAN, S-tags and 0x9100 on an access port, a tag
// stacked inside a trunk VLAN. tcpdump in the other VLANs and on the uplink's wire must record none of them, and
// must record the legitimate frames each guest sends afterwards (the proof that the captures were running).
// Needs root and `ip netns`; skips with the reason otherwise. Nothing touches the root namespace.
//
//   vm10 eth0 (TAP vif1.0, access 10 = the uplink's native VLAN) --+
//   vmt  eth0 (TAP vif2.0, trunk [20])                            --+
//   vmd  eth0 (TAP vif3.0, default)                               --+- xenbr0 --- peth0 ~~ veth ~~ eth0 phys (tcpdump)
//   l20  eth0 (TAP vif4.0, access 20)  (tcpdump)                  --+   uplink: trunk [10, 20], native_vlan 10
//   l10  eth0 (TAP vif5.0, access 10)  (tcpdump)                  --+

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { destroyLab, Lab, canRunNetns, sleep, waitFor } from "./helpers.js";
import { type Capture, dropDeltas, portDrops, sendRaw, startCapture, withMarker } from "./capture.js";

const support = canRunNetns();
if (!support.ok) console.warn(`netns VLAN escape test skipped: ${support.reason}`);
const skipNote = support.ok ? "" : ` (skipped: ${support.reason})`;

const BRIDGE = "xenbr0";
const MAC: Record<string, string> = {
  vm10: "02:00:00:41:00:01", vmt: "02:00:00:41:00:02", vmd: "02:00:00:41:00:03", l20: "02:00:00:41:00:04", l10: "02:00:00:41:00:05",
};
const VIF: Record<string, string> = { vm10: "vif1.0", vmt: "vif2.0", vmd: "vif3.0", l20: "vif4.0", l10: "vif5.0" };
const COUNT = 3;

const hex = (n: number, digits: number): string => n.toString(16).padStart(digits, "0");
/** Broadcast from SRC with the given tag stack ([tpid, tci] outermost first), ethertype 0x88b5, the marker. */
function frame(src: string, tags: [number, number][], marker: string): string {
  const stack = tags.map(([tpid, tci]) => hex(tpid, 4) + hex(tci, 4)).join("");
  return ("ff:ff:ff:ff:ff:ff" + src).replaceAll(":", "") + stack + "88b5" + Buffer.from(marker).toString("hex").padEnd(92, "0");
}
const tag = (tpid: number, tci: number): [number, number] => [tpid, tci];
const marker = (what: string): string => `tbesc-${process.pid}-${what}-${Math.random().toString(16).slice(2, 8)}`;

interface Escape {
  name: string;
  from: "vm10" | "vmt" | "vmd";
  tags: [number, number][];
  /** the counter of the sender's port that must count it */
  counter: "vlan_reserved" | "stacked_tag";
}

const ESCAPES: Escape[] = [
  // the double-tag hop: priority tag + the target VLAN's tag, through the uplink's native VLAN
  { name: "prio+vid20", from: "vm10", tags: [tag(0x8100, 0), tag(0x8100, 20)], counter: "stacked_tag" },
  { name: "prio(pcp5)+vid20", from: "vm10", tags: [tag(0x8100, 0xa000), tag(0x8100, 20)], counter: "stacked_tag" },
  { name: "prio+stag20", from: "vm10", tags: [tag(0x8100, 0), tag(0x88a8, 20)], counter: "stacked_tag" },
  { name: "stag20", from: "vm10", tags: [tag(0x88a8, 20)], counter: "stacked_tag" },
  { name: "9100-20", from: "vm10", tags: [tag(0x9100, 20)], counter: "stacked_tag" },
  { name: "access-4095", from: "vm10", tags: [tag(0x8100, 4095)], counter: "vlan_reserved" },
  // a trunk carrying only VLAN 20: the reserved VID, and a tag stacked inside VLAN 20
  { name: "trunk-4095", from: "vmt", tags: [tag(0x8100, 4095)], counter: "vlan_reserved" },
  { name: "trunk-4095-pcp7", from: "vmt", tags: [tag(0x8100, 0xefff)], counter: "vlan_reserved" },
  { name: "trunk-20+vid10", from: "vmt", tags: [tag(0x8100, 20), tag(0x8100, 10)], counter: "stacked_tag" },
  { name: "trunk-stag4095", from: "vmt", tags: [tag(0x88a8, 4095)], counter: "vlan_reserved" },
  // a default port: every VLAN but the reserved one
  { name: "default-4095", from: "vmd", tags: [tag(0x8100, 4095)], counter: "vlan_reserved" },
  { name: "default-stag4095", from: "vmd", tags: [tag(0x88a8, 4095)], counter: "vlan_reserved" },
];

/** Legitimate frames sent after the escapes, and the captures each must reach. */
const LEGIT: { name: string; from: "vm10" | "vmt" | "vmd"; tags: [number, number][]; seenBy: string[] }[] = [
  { name: "vm10-untagged", from: "vm10", tags: [], seenBy: ["l10", "phys"] },
  { name: "vmt-20", from: "vmt", tags: [tag(0x8100, 20)], seenBy: ["l20", "phys"] },
  { name: "vmd-10", from: "vmd", tags: [tag(0x8100, 10)], seenBy: ["l10", "phys"] },
  { name: "vmd-20", from: "vmd", tags: [tag(0x8100, 20)], seenBy: ["l20", "phys"] },
];

describe.skipIf(!support.ok)("VLAN escapes from hostile guests" + skipNote, () => {
  let lab: Lab;

  const send = (node: string, frames: string[]): Promise<void> => sendRaw(lab, node, frames, COUNT);

  beforeAll(async () => {
    lab = new Lab("vlan-escape");
    const nodes = ["dom0", "phys", ...Object.keys(VIF)];
    for (const n of nodes) {
      await lab.addNs(n);
      // no IPv6, no host noise: the captures see only what the test sends
      await lab.exec(n, ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1"]);
    }
    await lab.addVeth("dom0", "peth0", "phys", "eth0");
    await lab.ip("dom0", ["link", "set", "dev", "peth0", "up"]);
    await lab.ip("phys", ["link", "set", "dev", "eth0", "up"]);
    lab.writeConfig({
      control_socket: lab.socketPath,
      bridges: [{
        name: BRIDGE,
        uplink: { interface: "peth0", trunk: [10, 20], native_vlan: 10 },
        ports: [
          { name: VIF.vm10, vlan: 10 },
          { name: VIF.vmt, trunk: [20] },
          { name: VIF.vmd },
          { name: VIF.l20, vlan: 20 },
          { name: VIF.l10, vlan: 10 },
        ],
      }],
    });
    await lab.startDaemon("dom0");
    for (const [node, vif] of Object.entries(VIF)) {
      if (!(await waitFor(() => lab.linkExists("dom0", vif), 10_000))) throw new Error(`no TAP ${vif}\n${lab.daemonLog()}`);
      await lab.moveLink("dom0", vif, node, "eth0");
      await lab.ip(node, ["link", "set", "dev", "eth0", "address", MAC[node], "up"]);
    }
  }, 90_000);

  afterAll(() => destroyLab(lab));

  it("no escape reaches another VLAN or the uplink; each is counted; legitimate frames after them arrive", async () => {
    const caps: Capture[] = [];
    caps.push(await startCapture(lab, "l10", "eth0", "l10"));
    caps.push(await startCapture(lab, "l20", "eth0", "l20"));
    caps.push(await startCapture(lab, "phys", "eth0", "phys"));
    const before: Record<string, Record<string, number>> = {};
    for (const from of ["vm10", "vmt", "vmd"]) before[from] = await portDrops(lab, BRIDGE, VIF[from]);

    const escMarkers = new Map(ESCAPES.map((e) => [e.name, marker(e.name)]));
    for (const from of ["vm10", "vmt", "vmd"] as const) {
      const frames = ESCAPES.filter((e) => e.from === from).map((e) => frame(MAC[from], e.tags, escMarkers.get(e.name)!));
      await send(from, frames);
    }
    await sleep(300);
    const legitMarkers = new Map(LEGIT.map((l) => [l.name, marker(l.name)]));
    for (const l of LEGIT) await send(l.from, [frame(MAC[l.from], l.tags, legitMarkers.get(l.name)!)]);
    // wait until every capture has its legitimate frames (tcpdump writes each packet at once)
    await sleep(500);
    const seen: Record<string, Buffer[]> = {};
    for (const c of caps) seen[c.key] = await c.stop();

    for (const e of ESCAPES) {
      for (const c of caps) {
        const got = withMarker(seen[c.key], escMarkers.get(e.name)!);
        expect(got.map((f) => f.toString("hex").slice(0, 48)), `escape ${e.name} from ${e.from} reached ${c.key}`).toEqual([]);
      }
    }
    for (const l of LEGIT) {
      for (const key of l.seenBy) {
        expect(withMarker(seen[key], legitMarkers.get(l.name)!).length, `legitimate ${l.name} missing on ${key}\n${lab.daemonLog(20)}`)
          .toBe(COUNT);
      }
    }
    // what each capture saw of the legitimate frames carries the right VLAN: VLAN 10 leaves the uplink untagged
    const vmd10 = withMarker(seen.phys, legitMarkers.get("vmd-10")!)[0];
    expect(vmd10.readUInt16BE(12)).toBe(0x88b5);
    const vmd20 = withMarker(seen.phys, legitMarkers.get("vmd-20")!)[0];
    expect([vmd20.readUInt16BE(12), vmd20.readUInt16BE(14) & 0xfff]).toEqual([0x8100, 20]);

    // every escape was dropped at the sender's port and counted there
    for (const from of ["vm10", "vmt", "vmd"] as const) {
      const after = await portDrops(lab, BRIDGE, VIF[from]);
      const want: Record<string, number> = {};
      for (const e of ESCAPES.filter((x) => x.from === from)) want[e.counter] = (want[e.counter] ?? 0) + COUNT;
      expect(dropDeltas(before[from], after), `drops of ${VIF[from]}`).toEqual(want);
    }
  }, 60_000);
});
