// Privileged test of scripts/lib/hugepages.sh, which the vhost-user bench uses for testpmd and OVS-DPDK: it adds 2 MiB
// pages to the pool and mounts a private hugetlbfs, and gives both back, also when the script is stopped by a signal
// (its exit trap), and it hands back only the pages it added. Needs root and 2 MiB hugepage support; skips with the
// reason otherwise. Reserves 4 pages (8 MiB) for a moment; no namespace, no link.

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { REPO_ROOT, run, waitFor } from "./helpers.js";

const NR = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
const skip = process.getuid?.() !== 0 ? "needs root" : !existsSync(NR) ? `${NR} missing (no 2 MiB hugepages)` : "";
if (skip) console.warn(`bench hugepages test skipped: ${skip}`);

const nr = (): number => Number(readFileSync(NR, "utf8").trim());
const mounted = (dir: string): boolean => readFileSync("/proc/mounts", "utf8").split("\n").some((l) => l.split(" ")[1] === dir);
const work = mkdtempSync(join(tmpdir(), "tb-huge-test-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

// A script that sources the library, reserves PAGES on DIR with tb_huge_release in its EXIT trap as vhost-user.sh has
// it, prints "reserved", then waits (or runs BODY). Its TERM trap also ends its background jobs at once; vhost-user.sh's
// runs once its foreground command has ended (bash defers traps until then; under bench --all the whole step's process
// group gets the TERM, so that command ends too).
function script(pages: number, dir: string, body: string): string {
  const file = join(work, `s-${Math.random().toString(36).slice(2)}.sh`);
  writeFileSync(file, `set -euo pipefail
source ${REPO_ROOT}/scripts/lib/netns.sh
source ${REPO_ROOT}/scripts/lib/hugepages.sh
trap 'tb_huge_release' EXIT
trap 'kill $(jobs -p) 2>/dev/null; exit 143' TERM
tb_huge_reserve ${pages} ${dir} || { echo "failed: $TB_HUGE_ERR"; exit 3; }
echo "reserved $TB_HUGE_ADDED"
${body}
`);
  return file;
}

describe.skipIf(skip !== "")(`bench hugepages (scripts/lib/hugepages.sh)${skip ? ` (skipped: ${skip})` : ""}`, () => {
  it("adds the pages and mounts a hugetlbfs, and a normal exit gives both back", async () => {
    const before = nr();
    const dir = join(work, "huge1");
    const r = await run("bash", [script(4, dir, `cat ${NR}; grep -c " ${dir} hugetlbfs " /proc/mounts`)], { timeoutMs: 30_000 });
    expect(r.stdout, r.stderr).toContain("reserved 4");
    const [, during, mountCount] = r.stdout.trim().split("\n");
    expect(Number(during)).toBeGreaterThanOrEqual(before + 4);
    expect(mountCount).toBe("1");
    expect(nr()).toBe(before);
    expect(mounted(dir)).toBe(false);
  });

  it("a SIGTERM while the pages are held gives them back and unmounts (the exit trap)", async () => {
    const before = nr();
    const dir = join(work, "huge2");
    const child = spawn("bash", [script(4, dir, "sleep 60 & wait")], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    await waitFor(() => out.includes("reserved"), 20_000);
    expect(mounted(dir)).toBe(true);
    const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(143);
    expect(nr()).toBe(before);
    expect(mounted(dir)).toBe(false);
  });

  it("gives back only the pages it added: a reservation made meanwhile stays", async () => {
    const before = nr();
    const dir = join(work, "huge3");
    // the script raises the pool by 2 pages of "someone else's" while it holds its own 4, then exits
    const r = await run("bash", [script(4, dir, `echo $(( $(cat ${NR}) + 2 )) > ${NR}`)], { timeoutMs: 30_000 });
    expect(r.stdout, r.stderr).toContain("reserved 4");
    try {
      expect(nr()).toBe(before + 2);
    } finally {
      writeFileSync(NR, String(Math.max(0, nr() - 2)));
    }
  });
});
