/** Variable substitution (and the word splitting after it) as the classic builder does them for Dockerfile words. */
import { describe, expect, it } from 'vitest';
import { splitWords } from '@berth/image-store';
import { expand } from '../src/expand.js';

const vars = new Map([
  ['A', 'one'],
  ['EMPTY', ''],
  ['SP', 'a b'],
]);

describe('expand', () => {
  it.each([
    ['$A', 'one'],
    ['${A}x', 'onex'],
    ['x$A/y', 'xone/y'],
    ['$UNSET-', '-'],
    ['${UNSET:-def}', 'def'],
    ['${EMPTY:-def}', 'def'],
    ['${A:-def}', 'one'],
    ['${A:+alt}', 'alt'],
    ['${UNSET:+alt}', ''],
    ['\\$A', '$A'],
    ["'$A'", "'$A'"],
    ['"$A"', '"one"'],
    ['$', '$'],
  ])('%s → %s', (input, out) => {
    expect(expand(input, vars)).toBe(out);
  });

  it('uses the escape character of the directive', () => {
    expect(expand('`$A', vars, '`')).toBe('$A');
  });
});

describe('splitWords (image-store) after expand', () => {
  it('splits on unquoted blanks, removes quotes, honours the escape directive', () => {
    expect(splitWords(expand(`a "$SP" '$A' f\\ g`, vars))).toEqual(['a', 'a b', '$A', 'f g']);
    expect(splitWords('a` b c', '`')).toEqual(['a b', 'c']);
  });
});
