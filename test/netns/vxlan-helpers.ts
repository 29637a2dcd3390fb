// Helpers for the VXLAN netns tests (vxlan.test.ts, vxlan-adopt.test.ts): whether this kernel can make a vxlan netdev.

import { execFileSync } from "node:child_process";
import { canRunNetns } from "./helpers.js";

/**
 * The kernel must have the vxlan driver: try one in a throwaway namespace (synchronous, for describe.skipIf). Also
 * false with canRunNetns()'s reason when netns tests cannot run at all.
 */
export function probeVxlan(): { ok: boolean; reason: string } {
  const base = canRunNetns();
  if (!base.ok) return base;
  const ns = `tb-vxprobe-${process.pid}`;
  try {
    execFileSync("ip", ["netns", "add", ns], { stdio: "pipe", timeout: 10_000 });
    execFileSync("ip", ["-n", ns, "link", "add", "vxprobe", "type", "vxlan", "id", "1", "dstport", "4789"], { stdio: "pipe", timeout: 10_000 });
    return { ok: true, reason: "" };
  } catch (e) {
    return { ok: false, reason: `this kernel cannot create a vxlan netdev (ip link add type vxlan failed): ${String((e as { stderr?: Buffer }).stderr ?? e).trim()}` };
  } finally {
    try {
      execFileSync("ip", ["netns", "del", ns], { stdio: "pipe", timeout: 10_000 });
    } catch {
      /* never created */
    }
  }
}
