/**
 * Code blocks of a Markdown document, for tests that run a document's examples word for word
 * (so the document cannot drift from the code): a fenced block whose info string carries
 * `doc-test=NAME` (```js doc-test=custom-berthd.mjs) is returned under NAME, its text exactly
 * as written between the fences.
 */
import { readFileSync } from 'node:fs';

export interface DocBlock {
  /** The fence's language (js, json, text, …). */
  lang: string;
  text: string;
  /** 1-based line of the opening fence. */
  line: number;
}

const OPEN = /^```(\S*)\s+(?:.*\s)?doc-test=(\S+)(?:\s.*)?$/;

/** The `doc-test=` blocks of a Markdown file by name; a repeated name or an unclosed block throws. */
export function docTestBlocks(markdownFile: string): Map<string, DocBlock> {
  const lines = readFileSync(markdownFile, 'utf8').split('\n');
  const blocks = new Map<string, DocBlock>();
  for (let i = 0; i < lines.length; i++) {
    const m = OPEN.exec(lines[i]!);
    if (!m) continue;
    const end = lines.indexOf('```', i + 1);
    if (end < 0) throw new Error(`${markdownFile}:${i + 1}: the doc-test block ${m[2]} is not closed`);
    if (blocks.has(m[2]!)) throw new Error(`${markdownFile}:${i + 1}: a second doc-test block named ${m[2]}`);
    blocks.set(m[2]!, { lang: m[1]!, text: lines.slice(i + 1, end).join('\n') + '\n', line: i + 1 });
    i = end;
  }
  return blocks;
}

/** The text of one block (throws naming the file when it is missing). */
export function docTestBlock(blocks: Map<string, DocBlock>, name: string): string {
  const b = blocks.get(name);
  if (!b) throw new Error(`no doc-test block named ${name} (have: ${[...blocks.keys()].join(', ')})`);
  return b.text;
}
