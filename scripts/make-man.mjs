// Writes the man pages tapbridge(8) and tapbridge.yaml(5) from the Markdown reference under docs/ (run by `prepare`
// and `npm run man`; `node scripts/make-man.mjs --out DIR` writes elsewhere, for tests).
//
// Model: docs/man/<page>.<section>.md holds what only a man page has (the ronn-style title line
// `# name(section) -- description`, SYNOPSIS, DESCRIPTION, FILES, SEE ALSO) and one line
// `<!-- include: ../<topic>.md -->` where a topic page's body goes (its own `#` title dropped; its `##` sections become
// the man page's sections). marked-man (a maintained marked extension, markdown to roff) renders the result.
// Links to other pages become their text in italics: a man page has nowhere to link to. The date in the header is
// SOURCE_DATE_EPOCH's when set (reproducible builds), else now.
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Marked } from 'marked';
import markedMan from 'marked-man';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = join(root, 'docs', 'man');
const argOut = process.argv.indexOf('--out');
const outDir = argOut > 0 ? process.argv[argOut + 1] : join(root, 'man');
const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
const INCLUDE = /^<!-- include: (\S+) -->$/gm;

/** A topic page's body for a man page: no `#` title; its `##` sections in capitals, as man pages write them. */
function body(file) {
  const lines = readFileSync(file, 'utf8').split('\n');
  if (!lines[0].startsWith('# ')) throw new Error(`${file}: the first line must be the page's "# " title`);
  let fenced = false;
  return lines.slice(1).map((line) => {
    if (line.startsWith('```')) fenced = !fenced;
    return !fenced && line.startsWith('## ') ? line.toUpperCase() : line;
  }).join('\n');
}

function manSource(file) {
  return readFileSync(file, 'utf8')
    .replace(INCLUDE, (_, rel) => body(join(dirname(file), rel)))
    .replace(/<!--[\s\S]*?-->\n?/g, '')
    // [text](other.md#x) or [text](../path): a reference to another page; marked-man renders "#" links as the text
    .replace(/\[([^\]]+)\]\((?![a-z]+:)[^)\s]*\)/g, (_, text) => `[${text}](#)`);
}

export function renderMan(source) {
  const date = process.env.SOURCE_DATE_EPOCH ? Number(process.env.SOURCE_DATE_EPOCH) * 1000 : Date.now();
  const marked = new Marked();
  marked.use({ ...markedMan, breaks: false, manVersion: `tapbridge ${version}`, manual: 'tapbridge', date });
  // marked escapes quotes in code spans as entities that roff would print as they are
  return marked.parse(source).replaceAll('&quot;', '"').replaceAll('&#39;', "'");
}

mkdirSync(outDir, { recursive: true });
for (const name of readdirSync(srcDir).filter((f) => /\.\d\.md$/.test(f)).sort()) {
  const out = join(outDir, name.slice(0, -'.md'.length));
  writeFileSync(out, renderMan(manSource(join(srcDir, name))));
  process.stdout.write(`make-man: ${out}\n`);
}
