// The daemon's V8 tuning (src/daemon/jit.ts): the smaller interrupt budget really makes V8 optimize a hot function
// sooner on this Node (a function that stays in the baseline tier with V8's default budget is TurboFan-compiled with
// ours), and a bad override is refused with its name.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { INTERRUPT_BUDGET, INTERRUPT_BUDGET_ENV, interruptBudget } from '../../src/daemon/jit.js';

const PROBE = fileURLToPath(new URL('../support/jit-probe.mjs', import.meta.url));
const JIT_JS = fileURLToPath(new URL('../../dist/daemon/jit.js', import.meta.url));

function probe(mode: 'tuned' | 'default'): { budget: number; turbofan: boolean } {
  const out = execFileSync(process.execPath, ['--allow-natives-syntax', '--no-concurrent-recompilation', PROBE, JIT_JS, mode], { encoding: 'utf8', timeout: 20_000 });
  return JSON.parse(out.trim()) as { budget: number; turbofan: boolean };
}

describe('V8 interrupt budget', () => {
  it('with the daemon budget a hot function is TurboFan-compiled after 200 calls; with V8 default it is not yet', () => {
    expect(probe('tuned')).toMatchObject({ budget: INTERRUPT_BUDGET, turbofan: true });
    expect(probe('default')).toMatchObject({ budget: 0, turbofan: false });
  });

  it(`${INTERRUPT_BUDGET_ENV}: unset or empty is the default, 0 keeps V8's, junk is refused by name`, () => {
    expect(interruptBudget({})).toBe(INTERRUPT_BUDGET);
    expect(interruptBudget({ [INTERRUPT_BUDGET_ENV]: '' })).toBe(INTERRUPT_BUDGET);
    expect(interruptBudget({ [INTERRUPT_BUDGET_ENV]: '0' })).toBe(0);
    expect(interruptBudget({ [INTERRUPT_BUDGET_ENV]: '65536' })).toBe(65536);
    for (const bad of ['-1', '1.5', 'lots', String(2 ** 25)]) {
      expect(() => interruptBudget({ [INTERRUPT_BUDGET_ENV]: bad })).toThrow(INTERRUPT_BUDGET_ENV);
    }
  });
});
