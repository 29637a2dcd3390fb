// Privileged test of scripts/bench/all.sh's signal path: a Ctrl-C or SIGTERM while a step runs must reach the step
// (which then cleans up its namespaces, OVS and hugepages in its own exit trap) before all.sh exits. The step runs
// under `timeout`, in a process group of its own. all.sh and scripts/lib/netns.sh are copied into a temp tree whose
// mcast.sh is a stand-in step: it records its PID, prints a line every 0.1 s (for 30 s at most), and records which
// signal it cleaned up on. Needs root (all.sh checks); no namespace, no link, no traffic.

import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { REPO_ROOT, waitFor } from "./helpers.js";

const skip = process.getuid?.() !== 0 ? "needs root (all.sh requires it)" : "";
if (skip) console.warn(`bench --all signal test skipped: ${skip}`);

const work = mkdtempSync(join(tmpdir(), "tb-all-signal-"));
const started: ChildProcess[] = [];
afterAll(() => {
  // only what this file started, by PID: a stand-in step left over, then all.sh
  for (const f of ["a", "b"]) {
    const pidFile = join(work, f, "step.pid");
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8")) : 0;
    if (pid > 0 && existsSync(`/proc/${pid}/cmdline`) && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("mcast.sh")) process.kill(pid, "SIGKILL");
  }
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  rmSync(work, { recursive: true, force: true });
});

/** A copy of all.sh and netns.sh under DIR with a stand-in mcast.sh and an empty dist/cli/main.js. */
function tree(dir: string): string {
  mkdirSync(join(dir, "scripts/bench"), { recursive: true });
  mkdirSync(join(dir, "scripts/lib"), { recursive: true });
  mkdirSync(join(dir, "dist/cli"), { recursive: true });
  copyFileSync(join(REPO_ROOT, "scripts/bench/all.sh"), join(dir, "scripts/bench/all.sh"));
  copyFileSync(join(REPO_ROOT, "scripts/lib/netns.sh"), join(dir, "scripts/lib/netns.sh"));
  writeFileSync(join(dir, "dist/cli/main.js"), "");
  writeFileSync(join(dir, "scripts/bench/mcast.sh"), `echo $$ > ${dir}/step.pid
trap 'echo TERM > ${dir}/step.cleaned; exit 143' TERM
trap 'echo INT > ${dir}/step.cleaned; exit 130' INT
for ((i = 0; i < 300; i++)); do echo "tick $i"; sleep 0.1; done
echo finished > ${dir}/step.finished
`);
  return join(dir, "scripts/bench/all.sh");
}

function start(dir: string): { child: ChildProcess; exited: Promise<number | null> } {
  const child = spawn("bash", [tree(dir), "--steps", "mcast", "--out", join(dir, "out.json")], {
    stdio: ["ignore", "pipe", "pipe"], detached: true,
  });
  started.push(child);
  child.stdout!.resume();
  child.stderr!.resume();
  const exited = new Promise<number | null>((res) => child.on("exit", (code, sig) => res(code ?? (sig === null ? null : 128))));
  return { child, exited };
}

const stepRunning = (dir: string): boolean => existsSync(join(dir, "step.pid")) && readFileSync(join(dir, "step.pid"), "utf8").trim() !== "";

describe.skipIf(skip !== "")(`bench --all: a signal reaches the running step${skip ? ` (skipped: ${skip})` : ""}`, () => {
  it("a SIGTERM to all.sh: the step cleans up on TERM at once and all.sh exits 143", async () => {
    const dir = join(work, "a");
    const { child, exited } = start(dir);
    expect(await waitFor(() => stepRunning(dir), 20_000)).toBe(true);
    child.kill("SIGTERM");
    // without passing it on, all.sh waits for the whole step (30 s) and the step never sees the signal
    const code = await Promise.race([exited, new Promise<string>((res) => setTimeout(() => res("still running"), 10_000))]);
    expect(code).toBe(143);
    expect(existsSync(join(dir, "step.cleaned")), "the step's TERM trap did not run").toBe(true);
    expect(readFileSync(join(dir, "step.cleaned"), "utf8").trim()).toBe("TERM");
    expect(existsSync(join(dir, "step.finished"))).toBe(false);
  }, 30_000);

  it("a Ctrl-C (SIGINT to all.sh's process group): the step cleans up (not ended by SIGPIPE without its trap), all.sh exits 130", async () => {
    const dir = join(work, "b");
    const { child, exited } = start(dir);
    expect(await waitFor(() => stepRunning(dir), 20_000)).toBe(true);
    // a terminal's Ctrl-C: the foreground process group (all.sh's; timeout made its own)
    process.kill(-child.pid!, "SIGINT");
    const code = await Promise.race([exited, new Promise<string>((res) => setTimeout(() => res("still running"), 10_000))]);
    expect(code).toBe(130);
    const pid = Number(readFileSync(join(dir, "step.pid"), "utf8"));
    expect(existsSync(`/proc/${pid}`), "the step still runs").toBe(false);
    expect(existsSync(join(dir, "step.cleaned")), "the step ended without its exit trap (SIGPIPE)").toBe(true);
    expect(existsSync(join(dir, "step.finished"))).toBe(false);
  }, 30_000);
});
