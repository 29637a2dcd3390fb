// Helpers for the handover tests (issue 11): start `tapbridge daemon --takeover` next to a lab's running daemon, and
// read ping's summary.

import { appendFileSync } from "node:fs";
import { CLI_MAIN, type Background, type Lab, waitFor } from "./helpers.js";

export interface TakeoverResult {
  /** the new daemon (now lab.daemon) */
  daemon: Background;
  /** how the old one exited */
  oldExit: { code: number | null; signal: NodeJS.Signals | null };
}

/**
 * Starts `daemon --takeover` in `node` and waits until the old daemon has exited and the new one logged that it took
 * over. The new daemon becomes lab.daemon (stopped by lab.destroy). Throws with both logs when it does not happen.
 */
export async function takeover(lab: Lab, node = "dom0", timeoutMs = 30_000): Promise<TakeoverResult> {
  const old = lab.daemon;
  if (!old?.running) throw new Error("no running daemon to take over from");
  const bg = lab.spawn(node, [process.execPath, CLI_MAIN, "daemon", "--takeover", "--config", lab.configPath], "tapbridge daemon --takeover");
  bg.child.stdout?.on("data", (d: string) => appendFileSync(lab.daemonLogPath, d));
  bg.child.stderr?.on("data", (d: string) => appendFileSync(lab.daemonLogPath, d));
  const ok = await waitFor(() => (!old.running && bg.stdout.includes("took over; forwarding")) || !bg.running, timeoutMs, 20);
  if (!ok || !bg.running || old.running) {
    const why = !bg.running ? `new daemon exited (code ${bg.exitCode})` : old.running ? "old daemon still running" : "no 'took over' line";
    await bg.stop(3_000);
    throw new Error(`takeover failed: ${why}\n--- new daemon:\n${(bg.stdout + bg.stderr).slice(-3000)}\n${lab.daemonLog(30)}`);
  }
  lab.daemon = bg;
  return { daemon: bg, oldExit: { code: old.exitCode, signal: old.exitSignal } };
}

export interface PingSummary {
  transmitted: number;
  received: number;
  duplicates: number;
  output: string;
}

/** Parses `ping -q` output: "N packets transmitted, M received, +D duplicates". */
export function pingSummary(output: string): PingSummary {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received(?:, \+(\d+) duplicates)?/.exec(output);
  return {
    transmitted: m ? Number(m[1]) : 0,
    received: m ? Number(m[2]) : 0,
    duplicates: m?.[3] ? Number(m[3]) : 0,
    output,
  };
}
