// How soon V8 optimizes the forwarding path (issue 13, latency).
//
// Measured with `--trace-opt` on a fresh daemon: V8 compiles a function with TurboFan once it has run about 132 KiB
// of bytecode (its default interrupt budget). The per-frame path (onRx, deliver, receive, admit, parseEthernet) runs a
// few hundred bytes of bytecode per frame, so at ping rates it stays in the baseline tiers for the first ~7000
// frames: after 500 pings (1000 frames) none of it was optimized, and the profile was half IC stubs
// (Builtins_LoadIC, KeyedLoadIC) of baseline code. A freshly (re)started daemon thus answers its first minutes of
// light traffic slower than it has to, and the benchmark's ping, which runs first after start, saw exactly that.
//
// A 32x smaller budget lets those functions tier up after about a hundred frames (measured: all five optimized
// within 100 pings, 2 deopts in the whole daemon, none on the frame path). It only changes *when* V8 optimizes,
// not the optimized code, so the steady-state rate is unchanged; the cost is that more start-up code (config
// parsing, module loading) gets compiled too, a few milliseconds once.
//
// v8.setFlagsFromString after start-up is allowed for this flag: V8 reads the budget each time it resets a
// function's budget, so the change applies to every function from then on (test/unit/jit.test.ts checks it on
// this Node). `TAPBRIDGE_V8_INTERRUPT_BUDGET` overrides the value (0 keeps V8's default), for measuring.

import { setFlagsFromString } from 'node:v8';

/** Bytes of bytecode a function runs before V8 considers optimizing it (V8's default: 132 KiB). */
export const INTERRUPT_BUDGET = 4096;
export const INTERRUPT_BUDGET_ENV = 'TAPBRIDGE_V8_INTERRUPT_BUDGET';

/** The budget to use: the environment's override when it is a sane integer, else INTERRUPT_BUDGET; 0 = V8's default. */
export function interruptBudget(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[INTERRUPT_BUDGET_ENV];
  if (raw === undefined || raw === '') return INTERRUPT_BUDGET;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0 || n > 1 << 24) {
    throw new Error(`${INTERRUPT_BUDGET_ENV} must be an integer 0..16777216 (bytes of bytecode; 0 = V8's default), got ${JSON.stringify(raw)}`);
  }
  return n;
}

/** Called once, first thing in the daemon. Returns the budget set (0: left at V8's default). */
export function tuneJit(env: NodeJS.ProcessEnv = process.env): number {
  const budget = interruptBudget(env);
  if (budget > 0) setFlagsFromString(`--interrupt-budget=${budget}`);
  return budget;
}
