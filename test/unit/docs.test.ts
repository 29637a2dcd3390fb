// The documentation against the code: every config key the loader accepts is on docs/configuration.md, every CLI verb
// and control method on docs/cli.md, every relative link of the README and docs/ leads to a file and heading that exist,
// and the man pages generated from docs/ carry them too.
//
// Nothing here is a copy of a list. The config keys come from the loader itself: a probe key at each level draws its
// "unknown key (allowed: ...)" error, and each allowed key is probed as a mapping and as a list of mappings to find the
// levels below (bridges[].ports[].lock, bridges[].mirrors[].select, ...), so a key or a level added later is found
// without touching this file. The CLI verbs come from the `switch (cmd)` of src/cli/main.ts (its `case` labels and the
// `sub`/`op` words each case compares), read with the TypeScript compiler's parser; the control methods from
// daemonMethods(); the drop reasons from DROP_REASONS.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, validateConfig } from '../../src/config/config.js';
import { daemonMethods } from '../../src/control/methods.js';
import { DROP_REASONS } from '../../src/bridge/port.js';
import type { Daemon } from '../../src/daemon/daemon.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const read = (rel: string): string => readFileSync(join(ROOT, rel), 'utf8');

// ---- what the code accepts ----

const PROBE = 'zz_docs_probe';
interface Step { key: string; list: boolean }
const pathOf = (steps: Step[]): string => steps.map((s, i) => `${i === 0 ? '' : '.'}${s.key}${s.list ? '[0]' : ''}`).join('');
const sectionOf = (steps: Step[]): string => (steps.length === 0 ? '(top level)' : steps.map((s) => `${s.key}${s.list ? '[]' : ''}`).join('.'));

/** A document with `leaf` at the end of steps; a bridge gets a name so that its other checks stay quiet. */
function docAt(steps: Step[], leaf: Record<string, unknown>): Record<string, unknown> {
  let value: unknown = leaf;
  for (let i = steps.length - 1; i >= 0; i--) {
    const holder: Record<string, unknown> = { [steps[i].key]: steps[i].list ? [value] : value };
    if (i > 0 && steps[i - 1].key === 'bridges' && steps[i - 1].list) holder.name = 'br0';
    value = holder;
  }
  return value as Record<string, unknown>;
}

/** The keys the loader allows at steps, from its own error about a probe key there; null if it is no mapping level. */
function allowedAt(steps: Step[]): string[] | null {
  const base = pathOf(steps);
  const want = base === '' ? PROBE : `${base}.${PROBE}`;
  try {
    validateConfig(docAt(steps, { [PROBE]: 1 }));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const issue of err.issues) {
      const m = /^unknown key \((?:allowed: )?(.*)\)$/.exec(issue.message);
      if (issue.path === want && m !== null) return m[1].split(',').map((k) => k.trim()).filter((k) => k !== '');
    }
  }
  return null;
}

/** Every level of the config file and the keys it allows, keyed by a readable path such as bridges[].ports[]. */
function configLevels(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const walk = (steps: Step[]): void => {
    const keys = allowedAt(steps);
    if (keys === null || steps.length > 6) return;
    out.set(sectionOf(steps), keys);
    for (const key of keys) {
      for (const list of [false, true]) {
        const next = [...steps, { key, list }];
        if (!out.has(sectionOf(next)) && allowedAt(next) !== null) walk(next);
      }
    }
  };
  walk([]);
  return out;
}

/** CLI verbs as word paths (["vxlan", "remote", "add"]) from the `switch (cmd)` of src/cli/main.ts. */
function cliVerbs(): string[][] {
  const file = 'src/cli/main.ts';
  const sf = ts.createSourceFile(file, read(file), ts.ScriptTarget.Latest, true);
  const verbs: string[][] = [];
  /** `name === 'x'` or `name !== 'x'` anywhere under node, in source order. */
  const compared = (node: ts.Node, name: string): { word: string; node: ts.Node }[] => {
    const found: { word: string; node: ts.Node }[] = [];
    const visit = (n: ts.Node): void => {
      if (ts.isBinaryExpression(n) && ts.isIdentifier(n.left) && n.left.text === name && ts.isStringLiteral(n.right)
        && [ts.SyntaxKind.EqualsEqualsEqualsToken, ts.SyntaxKind.ExclamationEqualsEqualsToken].includes(n.operatorToken.kind)) {
        found.push({ word: n.right.text, node: n });
      }
      ts.forEachChild(n, visit);
    };
    visit(node);
    return found;
  };
  const visit = (n: ts.Node): void => {
    if (ts.isSwitchStatement(n) && ts.isIdentifier(n.expression) && n.expression.text === 'cmd') {
      for (const clause of n.caseBlock.clauses) {
        if (!ts.isCaseClause(clause) || !ts.isStringLiteral(clause.expression)) continue;
        const verb = clause.expression.text;
        const subs = compared(clause, 'sub');
        if (subs.length === 0) verbs.push([verb]);
        for (const s of subs) {
          // an `if (sub === 'x') { ... op ... }` block: its `op` words are the third level
          let block: ts.Node = s.node;
          while (!ts.isIfStatement(block) && block.parent !== clause) block = block.parent;
          const ops = ts.isIfStatement(block) ? compared(block.thenStatement, 'op') : [];
          if (ops.length === 0) verbs.push([verb, s.word]);
          for (const o of ops) verbs.push([verb, s.word, o.word]);
        }
      }
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return verbs;
}

// ---- what the docs say ----

/** The text of a page's code: fenced blocks and code spans, where keys, verbs and methods are written. */
function codeText(markdown: string): string {
  const fences = [...markdown.matchAll(/^```[^\n]*\n([\s\S]*?)^```/gm)].map((m) => m[1]);
  const prose = markdown.replace(/^```[^\n]*\n[\s\S]*?^```/gm, '');
  const spans = [...prose.matchAll(/(`+)([\s\S]*?[^`])\1(?!`)/g)].map((m) => m[2]);
  return [...fences, ...spans].join('\n');
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** A verb path as the docs write it: `vlan show`, `fdb add|del`, `vxlan remote add|del`, `bond set-active`. */
function verbPattern(words: string[]): RegExp {
  const alt = (w: string): string => `(?:[\\w-]+\\|)*${escape(w)}(?:\\|[\\w-]+)*`;
  return new RegExp(`(?<![\\w-])${escape(words[0])}${words.slice(1).map((w) => `\\s+${alt(w)}`).join('')}(?![\\w-])`);
}

/** GitHub's anchor for a heading. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, '').replace(/ /g, '-');
}
function anchorsOf(markdown: string): Set<string> {
  const noFences = markdown.replace(/^```[^\n]*\n[\s\S]*?^```/gm, '');
  return new Set([...noFences.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1])));
}

const DOC_PAGES = readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`);

describe('docs/configuration.md names every key the config loader accepts', () => {
  const levels = configLevels();

  it('the loader is probed at every level (the probe finds the levels below the top)', () => {
    // a sanity check of the probe, not of the docs: if it found no nested level it would check nothing
    for (const level of ['(top level)', 'metrics', 'bridges[]', 'bridges[].uplink', 'bridges[].uplink.bond', 'bridges[].ports[]',
      'bridges[].ports[].create', 'bridges[].ports[].lock', 'bridges[].port_defaults', 'bridges[].fdb[]', 'bridges[].vxlan[]',
      'bridges[].mirrors[]', 'bridges[].mirrors[].select']) {
      expect([...levels.keys()], level).toContain(level);
    }
  });

  it('every key at every level appears in the page\'s code (a table\'s key column, a YAML example, a code span)', () => {
    const words = new Set(codeText(read('docs/configuration.md')).match(/[A-Za-z_][A-Za-z0-9_]*/g) ?? []);
    const missing: string[] = [];
    for (const [level, keys] of levels) for (const k of keys) if (!words.has(k)) missing.push(`${level}: ${k}`);
    expect(missing, 'config keys the loader accepts that docs/configuration.md does not name').toEqual([]);
  });
});

describe('docs/cli.md names every CLI verb and control method', () => {
  const code = codeText(read('docs/cli.md'));

  it('every verb of src/cli/main.ts (with its sub-verbs) appears in the page\'s code', () => {
    const verbs = cliVerbs();
    // the parse found the switch and its nested words (a sanity check of the parse)
    expect(verbs.map((v) => v.join(' '))).toEqual(expect.arrayContaining(['daemon', 'show', 'fdb add', 'vxlan remote add']));
    const missing = verbs.filter((v) => !verbPattern(v).test(code)).map((v) => v.join(' '));
    expect(missing, 'CLI verbs docs/cli.md does not show').toEqual([]);
  });

  it('every control method of daemonMethods() appears in the page\'s code', () => {
    const methods = [...daemonMethods({} as Daemon).keys()];
    expect(methods.length).toBeGreaterThan(10);
    const missing = methods.filter((m) => !new RegExp(`(?<![\\w.])${escape(m)}(?![\\w.])`).test(code));
    expect(missing, 'control methods docs/cli.md does not name').toEqual([]);
  });
});

describe('docs/cli.md names every drop reason `stats` reports', () => {
  it('every entry of DROP_REASONS (src/bridge/port.ts) appears in the page\'s code', () => {
    const words = new Set(codeText(read('docs/cli.md')).match(/[A-Za-z_][A-Za-z0-9_]*/g) ?? []);
    expect(DROP_REASONS.filter((r) => !words.has(r))).toEqual([]);
  });
});

describe('links of the README and docs/', () => {
  it('every relative link leads to a file that exists, and a #fragment into Markdown to a heading there', () => {
    const broken: string[] = [];
    for (const page of ['README.md', ...DOC_PAGES]) {
      const text = read(page).replace(/^```[^\n]*\n[\s\S]*?^```/gm, '');
      for (const m of text.matchAll(/\[[^\]]*\]\(([^)\s]+)\)/g)) {
        const target = m[1];
        if (/^[a-z]+:/.test(target)) continue;
        const [file, fragment] = target.split('#') as [string, string | undefined];
        const abs = file === '' ? join(ROOT, page) : normalize(join(ROOT, dirname(page), file));
        if (!existsSync(abs) || relative(ROOT, abs).startsWith('..')) {
          broken.push(`${page}: ${target} (no such file)`);
          continue;
        }
        if (fragment !== undefined && fragment !== '' && abs.endsWith('.md') && !anchorsOf(readFileSync(abs, 'utf8')).has(fragment)) {
          broken.push(`${page}: ${target} (no such heading)`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  it('the README links every page under docs/', () => {
    const readme = read('README.md');
    const unlinked = DOC_PAGES.filter((p) => !readme.includes(`](${p})`) && !readme.includes(`](${p}#`));
    expect(unlinked).toEqual([]);
  });
});

describe('man pages generated from docs/ (scripts/make-man.mjs)', () => {
  const out = mkdtempSync(join(tmpdir(), 'tb-man-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'make-man.mjs'), '--out', out], { encoding: 'utf8', env: { ...process.env, SOURCE_DATE_EPOCH: '0' } });
  const pkg = JSON.parse(read('package.json')) as { man: string[]; files: string[] };
  const hasMan = spawnSync('man', ['--version'], { stdio: 'ignore' }).status === 0;

  it('writes exactly the pages package.json\'s man field installs, into a directory its files field ships', () => {
    expect(readdirSync(out).sort()).toEqual(pkg.man.map((m) => m.replace(/^\.\/man\//, '')).sort());
    expect(pkg.files).toContain('man');
  });

  it('tapbridge(8) carries docs/cli.md: every verb; tapbridge.yaml(5) carries docs/configuration.md: every key', () => {
    const page8 = readFileSync(join(out, 'tapbridge.8'), 'utf8');
    const page5 = readFileSync(join(out, 'tapbridge.yaml.5'), 'utf8');
    expect(page8.split('\n')[0]).toMatch(/^\.TH "TAPBRIDGE" "8" /);
    expect(page5.split('\n')[0]).toMatch(/^\.TH "TAPBRIDGE\\\.YAML" "5" /);
    // roff escapes "-" and "."; compare with them undone
    const plain = (roff: string): string => roff.replace(/\\([-.|])/g, '$1').replace(/\\f[BIRP]/g, '');
    const text8 = plain(page8);
    expect(cliVerbs().filter((v) => !verbPattern(v).test(text8)).map((v) => v.join(' '))).toEqual([]);
    const words5 = new Set(plain(page5).match(/[A-Za-z_][A-Za-z0-9_]*/g) ?? []);
    const missing = [...configLevels().values()].flat().filter((k) => !words5.has(k));
    expect(missing).toEqual([]);
    expect(page8 + page5).not.toMatch(/&quot;|&#39;|&amp;/);
  });

  it.skipIf(!hasMan)(`man renders both pages without a warning${hasMan ? '' : ' (skipped: no man on PATH)'}`, () => {
    for (const page of pkg.man) {
      const r = spawnSync('man', ['--warnings', '-l', join(out, page.replace(/^\.\/man\//, ''))], {
        encoding: 'utf8', env: { ...process.env, MANWIDTH: '100', PAGER: 'cat' }, timeout: 30_000,
      });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr.trim(), page).toBe('');
      expect(r.stdout.replace(/.\x08/g, ''), page).toContain('NAME');
    }
  });
});

describe('the README\'s Multicast and vhost-user sections say what the reference pages say', () => {
  /** every fenced block of a page, with the `test-snippet` marker right before it, if any */
  function fenced(text: string): Array<{ name: string | null; body: string }> {
    const out: Array<{ name: string | null; body: string }> = [];
    for (const m of text.matchAll(/(?:<!-- test-snippet: ([a-z0-9-]+) -->\n)?^```[a-z]*\n([\s\S]*?)^```$/gm)) out.push({ name: m[1] ?? null, body: m[2] });
    return out;
  }
  const readme = fenced(read('README.md'));

  it('each README test-snippet is byte for byte the docs page block the tests read', () => {
    const named = readme.filter((b) => b.name !== null);
    expect(named.map((b) => b.name)).toContain('libvirt-vhostuser');
    for (const b of named) {
      const page = DOC_PAGES.find((p) => read(p).includes(`<!-- test-snippet: ${b.name} -->`));
      expect(page, `no docs page has test-snippet ${b.name}`).toBeDefined();
      expect(fenced(read(page!)).find((d) => d.name === b.name)?.body).toBe(b.body);
    }
  });

  it('the README\'s QEMU vhost-user command is the one docs/vhost-user.md gives (and its test runs)', () => {
    const cmd = readme.find((b) => b.body.startsWith('qemu-system-x86_64') && b.body.includes('vhost-user'));
    expect(cmd).toBeDefined();
    expect(fenced(read('docs/vhost-user.md')).map((d) => d.body)).toContain(cmd!.body);
  });

  it('the README\'s multicast keys are valid bridge keys with the defaults the issue names', () => {
    const text = read('README.md');
    const at = text.indexOf('## Multicast');
    const block = fenced(text.slice(at))[0].body;
    const keys = parseConfig(`bridges:\n  - name: br0\n${block.split('\n').filter((l) => l.trim() !== '').map((l) => `    ${l}`).join('\n')}\n`);
    expect(keys.bridges[0].name).toBe('br0');
    expect(block).toMatch(/multicast_snooping: true/);
    // "Snooping is on by default:" the values shown are the defaults (a bridge without those keys)
    expect(keys.bridges[0].multicast).toEqual(parseConfig('bridges:\n  - name: br0\n').bridges[0].multicast);
  });
});
