// Run by test/unit/jit.test.ts as `node --allow-natives-syntax --no-concurrent-recompilation jit-probe.mjs JIT_JS MODE`:
// tunes V8 the way the daemon does (MODE tuned) or keeps V8's default budget (MODE default), then runs a small
// frame-like function 200 times (about 30 KiB of bytecode: under V8's default budget of 132 KiB, over 4 KiB) and
// prints whether V8 has optimized it with TurboFan.
const { tuneJit } = await import(process.argv[2]);
const env = process.argv[3] === 'default' ? { TAPBRIDGE_V8_INTERRUPT_BUDGET: '0' } : {};
const budget = tuneJit(env);
function frameLike(buf, i) {
  let h = 0;
  for (let k = 0; k < 6; k++) h = (h * 31 + buf[(i + k) & 63]) | 0;
  return h;
}
const buf = new Uint8Array(64);
let acc = 0;
for (let i = 0; i < 200; i++) acc ^= frameLike(buf, i);
const status = %GetOptimizationStatus(frameLike);
// bit 6 (64): TurboFanned, in V8's OptimizationStatus
console.log(JSON.stringify({ budget, turbofan: (status & 64) !== 0, status, acc }));
