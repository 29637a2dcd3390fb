// Helpers for the handover tests (issue 11): the topologies they start from, start `tapbridge daemon --takeover` next
// to a lab's running daemon, and read ping's summary.

import { appendFileSync } from "node:fs";
import { CLI_MAIN, type Background, destroyLab, Lab, waitFor } from "./helpers.js";

export { uplinkLab } from "./helpers.js";

/**
 * dom0 with two TAPs moved into vm1 and vm2 (addressed `ips`), pinging each other; `extra` top-level config keys,
 * `env` extra environment variables of the daemon.
 */
export async function tapLab(tag: string, ips: { vm1: string; vm2: string }, extra: Record<string, unknown> = {},
  env?: NodeJS.ProcessEnv): Promise<Lab> {
  const lab = new Lab(tag);
  try {
    for (const node of ["dom0", "vm1", "vm2"]) {
      await lab.addNs(node);
      await lab.exec(node, ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1"]);
    }
    // with data workers, snooping off: IGMP/MLD snooping (on by default) keeps a bridge's ports on the main thread
    const snooping = Number(extra.data_workers ?? 1) > 1 ? { multicast_snooping: false } : {};
    lab.writeConfig({ control_socket: lab.socketPath, ...extra, bridges: [{ name: "xenbr0", ...snooping, ports: [{ name: "vif1.0" }, { name: "vif2.0" }] }] });
    await lab.startDaemon("dom0", 20_000, env);
    await lab.takeTap("vif1.0", "vm1", ips.vm1);
    await lab.takeTap("vif2.0", "vm2", ips.vm2);
    const r = await lab.pingUntil("vm1", ips.vm2, 10_000);
    if (!r.ok) throw new Error(`vm1 -> vm2 before the test: ${r.output}\n${lab.daemonLog()}`);
  } catch (err) {
    await destroyLab(lab);
    throw err;
  }
  return lab;
}

/**
 * `daemon --takeover` in `node` next to the lab's daemon, with extra environment variables; its output goes to the
 * lab's daemon log too.
 */
export function spawnTakeover(lab: Lab, env: NodeJS.ProcessEnv = {}, node = "dom0"): Background {
  const bg = lab.spawn(node, [process.execPath, CLI_MAIN, "daemon", "--takeover", "--config", lab.configPath], "tapbridge daemon --takeover",
    { env: { ...process.env, ...env } });
  bg.child.stdout?.on("data", (d: string) => appendFileSync(lab.daemonLogPath, d));
  bg.child.stderr?.on("data", (d: string) => appendFileSync(lab.daemonLogPath, d));
  return bg;
}

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
  const bg = spawnTakeover(lab, {}, node);
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
