// isProcessGone / waitProcessGone (src/handover/oldpid.ts): the new daemon reads nothing while the old pid lives.

import { spawn, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { isProcessGone, waitProcessGone } from '../../src/handover/oldpid.js';

describe('oldpid', () => {
  it('a live process is not gone; one that exited and was reaped is', async () => {
    expect(isProcessGone(process.pid)).toBe(false);
    const child = spawn('sleep', ['0.2']);
    const pid = child.pid!;
    expect(isProcessGone(pid)).toBe(false);
    expect(await waitProcessGone(pid, 5_000)).toBe(true);
  });

  it('waitProcessGone gives up after its bound while the process lives', async () => {
    const child = spawn('sleep', ['5']);
    try {
      expect(await waitProcessGone(child.pid!, 100)).toBe(false);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('a zombie (exited, not reaped by its parent) counts as gone', async () => {
    // sh starts `sleep 0` in the background, prints its pid and becomes `sleep 3`, which never reaps it
    const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 3'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const pid = await new Promise<number>((resolve) => parent.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
      expect(Number.isInteger(pid) && pid > 0).toBe(true);
      expect(await waitProcessGone(pid, 2_000)).toBe(true);
      // it is still in the process table (kill(pid, 0) succeeds): a zombie
      expect(spawnSync('kill', ['-0', String(pid)]).status).toBe(0);
    } finally {
      parent.kill('SIGKILL');
    }
  });
});
