// Layers point down (STYLE.md, issue 20 §6): the forwarding engine and what it is built on (src/bridge, src/fdb,
// src/frame) import nothing from the layers above them: observers (src/observe), the daemon, control, CLI,
// metrics, state, config. The engine defines the hooks it calls (src/bridge/port-tap.ts); those layers implement them.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const LOWER = ['bridge', 'fdb', 'frame'];
const UPPER = ['observe', 'daemon', 'control', 'cli', 'metrics', 'state', 'service', 'config', 'handover', 'dataplane'];

/** Every relative import of a .ts file under src/<dir>, as [file, imported path]. */
function importsOf(dir: string): [string, string][] {
  const out: [string, string][] = [];
  const root = join(REPO_ROOT, 'src', dir);
  for (const f of readdirSync(root, { recursive: true }) as string[]) {
    if (!f.endsWith('.ts')) continue;
    const text = readFileSync(join(root, f), 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"](\.[^'"]+)['"]/g)) out.push([`src/${dir}/${f}`, m[1]]);
  }
  return out;
}

describe('layering', () => {
  it('the engine imports nothing from the layers above it', () => {
    const upward = LOWER.flatMap((dir) => importsOf(dir)
      .filter(([, spec]) => UPPER.some((u) => spec.includes(`../${u}/`)))
      .map(([file, spec]) => `${file} -> ${spec}`));
    expect(upward).toEqual([]);
  });

  it('the capture hook is the engine\'s: src/observe/capture.ts implements PortTap from src/bridge/port-tap.ts', () => {
    const capture = readFileSync(join(REPO_ROOT, 'src/observe/capture.ts'), 'utf8');
    expect(capture).toMatch(/import type \{ PortTap \} from '\.\.\/bridge\/port-tap\.js'/);
    expect(capture).toMatch(/class PortCaptures implements PortTap/);
  });
});
