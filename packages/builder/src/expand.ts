/**
 * Variable substitution in Dockerfile words as the classic builder does it (moby's shell
 * lexer semantics for the forms a Dockerfile uses): `$VAR`, `${VAR}`, `${VAR:-word}`,
 * `${VAR:+word}`, `\$` escapes; quotes are kept for the word splitter (image-store's
 * splitWords) to remove.
 */
export type Vars = Map<string, string>;

export function expand(s: string, vars: Vars, escape = '\\'): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === escape && s[i + 1] === '$') {
      out += '$';
      i++;
      continue;
    }
    if (c === "'") {
      const j = s.indexOf("'", i + 1);
      const end = j < 0 ? s.length : j + 1;
      out += s.slice(i, end);
      i = end - 1;
      continue;
    }
    if (c !== '$') {
      out += c;
      continue;
    }
    if (s[i + 1] === '{') {
      const j = s.indexOf('}', i + 2);
      if (j < 0) {
        out += s.slice(i);
        break;
      }
      const body = s.slice(i + 2, j);
      const m = /^(\w+)(?::([-+])(.*))?$/s.exec(body);
      if (!m) out += s.slice(i, j + 1);
      else {
        const v = vars.get(m[1]);
        if (m[2] === '-') out += v ? v : expand(m[3], vars, escape);
        else if (m[2] === '+') out += v ? expand(m[3], vars, escape) : '';
        else out += v ?? '';
      }
      i = j;
      continue;
    }
    const m = /^\w+/.exec(s.slice(i + 1));
    if (!m) {
      out += c;
      continue;
    }
    out += vars.get(m[0]) ?? '';
    i += m[0].length;
  }
  return out;
}
