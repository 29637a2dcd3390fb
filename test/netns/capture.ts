// For the hostile-guest tests: raw frames sent from a guest, tcpdump captures read back as frames, a port's drops.

import { join } from "node:path";
import { readPcap } from "../support/pcap.js";
import type { BridgeStats } from "../support/json-shapes.js";
import { type Background, type Lab, PY_RAW_SENDER, PYTHON, waitFor } from "./helpers.js";

export interface Capture {
  readonly key: string;
  /** Stops tcpdump (it writes every packet as it comes, -U) and returns the frames it recorded. */
  stop(): Promise<Buffer[]>;
}

/** Starts `tcpdump -i IFNAME -w FILE` in NODE and resolves once it listens. */
export async function startCapture(lab: Lab, node: string, ifname: string, key: string): Promise<Capture> {
  const file = join(lab.dir, `${key}.pcap`);
  const bg: Background = lab.spawn(node, ["tcpdump", "-i", ifname, "-nn", "--immediate-mode", "-s", "256", "-U", "-Z", "root", "-w", file], `tcpdump ${key}`);
  const listening = await waitFor(() => bg.stderr.includes("listening on") || !bg.running, 10_000, 50);
  if (!listening || !bg.running) throw new Error(`tcpdump ${key} did not start: ${bg.stderr}`);
  return {
    key,
    async stop() {
      await bg.stop(3_000);
      return readPcap(file);
    },
  };
}

/** Frames that carry the ASCII marker anywhere. */
export function withMarker(frames: Buffer[], marker: string): Buffer[] {
  const m = Buffer.from(marker);
  return frames.filter((f) => f.includes(m));
}

/** `stats -j` drops of one port. */
export async function portDrops(lab: Lab, bridge: string, port: string): Promise<Record<string, number>> {
  const s = await lab.cliJson<BridgeStats[]>(["stats"]);
  const p = s.find((b) => b.bridge === bridge)?.ports.find((x) => x.name === port);
  if (!p) throw new Error(`no stats for ${port}: ${JSON.stringify(s)}`);
  return p.drops;
}

/** Counter deltas between two drops snapshots, only the keys that moved. */
export function dropDeltas(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v !== (before[k] ?? 0)) out[k] = v - (before[k] ?? 0);
  return out;
}

/** Sends each hex frame COUNT times (20 ms apart) from NODE's eth0 with an AF_PACKET socket. */
export async function sendRaw(lab: Lab, node: string, frames: string[], count: number): Promise<void> {
  const r = await lab.exec(node, [PYTHON, "-c", PY_RAW_SENDER, "eth0", String(count), "0.02", ...frames], { check: false, timeoutMs: 15_000 });
  if (r.code !== 0) throw new Error(`raw sender in ${node}: ${r.stderr}`);
}
