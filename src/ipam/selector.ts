/**
 * IPPool `nodeSelector`: the common subset of Calico's selector language, matched against a
 * Node's labels.
 *
 * Grammar (whitespace between tokens is free):
 *
 *   selector := '' | term ( '&&' term )*
 *   term     := 'all()' | 'has(' key ')' | '!has(' key ')'
 *             | key '==' value | key '!=' value
 *             | key 'in' '{' value ( ',' value )* '}' | key 'not in' '{' ... '}'
 *   value    := a string in single or double quotes
 *   key      := a label key (letters, digits, `-`, `_`, `.`, `/`)
 *
 * Semantics as Calico's: `!=` and `not in` hold when the label is absent; `''` and `all()` match
 * every node.
 *
 * Not supported (an error naming what was found, never a silent "matches nothing"): `||`,
 * parentheses, `!` before anything but `has`, `contains` / `starts with` / `ends with`,
 * `global()`. Pools select nodes by a label or two in practice; a full parser belongs to a
 * Calico-selector module if policy ever needs one.
 *
 * Pure: imports nothing.
 */

export class SelectorError extends Error {
  override name = 'SelectorError';
}

type Term =
  | { op: 'has' | 'notHas'; key: string }
  | { op: 'eq' | 'ne'; key: string; value: string }
  | { op: 'in' | 'notIn'; key: string; values: string[] };

export interface CompiledNodeSelector {
  /** The selector as written ('' when absent). */
  text: string;
  terms: Term[];
}

const KEY = /^[A-Za-z0-9][-A-Za-z0-9_./]*/;

export function compileNodeSelector(text: string | undefined): CompiledNodeSelector {
  const src = text ?? '';
  const terms: Term[] = [];
  let i = 0;
  const fail = (what: string): never => {
    throw new SelectorError(`${JSON.stringify(src)}: ${what} at offset ${i}`);
  };
  const ws = () => {
    while (i < src.length && /\s/.test(src[i]!)) i++;
  };
  const take = (s: string): boolean => {
    ws();
    if (src.startsWith(s, i)) {
      i += s.length;
      return true;
    }
    return false;
  };
  const key = (): string => {
    ws();
    const m = KEY.exec(src.slice(i));
    if (!m) return fail('expected a label key');
    i += m[0].length;
    return m[0];
  };
  const value = (): string => {
    ws();
    const q = src[i];
    if (q !== "'" && q !== '"') return fail('expected a quoted value');
    const end = src.indexOf(q, i + 1);
    if (end < 0) return fail('unterminated string');
    const v = src.slice(i + 1, end);
    i = end + 1;
    return v;
  };
  const list = (): string[] => {
    if (!take('{')) fail("expected '{'");
    const values = [value()];
    while (take(',')) values.push(value());
    if (!take('}')) fail("expected '}'");
    return values;
  };
  ws();
  if (i === src.length) return { text: src, terms };
  for (;;) {
    ws();
    if (take('all()')) {
      // matches everything: no term
    } else if (take('!has(')) {
      terms.push({ op: 'notHas', key: key() });
      if (!take(')')) fail("expected ')'");
    } else if (take('has(')) {
      terms.push({ op: 'has', key: key() });
      if (!take(')')) fail("expected ')'");
    } else {
      const k = key();
      if (take('==')) terms.push({ op: 'eq', key: k, value: value() });
      else if (take('!=')) terms.push({ op: 'ne', key: k, value: value() });
      else if (take('not in')) terms.push({ op: 'notIn', key: k, values: list() });
      else if (take('in')) terms.push({ op: 'in', key: k, values: list() });
      else fail(`expected ==, !=, in or not in after ${k}`);
    }
    ws();
    if (i === src.length) break;
    if (src.startsWith('||', i)) fail("'||' is not supported (only '&&')");
    if (!take('&&')) fail("expected '&&' or the end");
  }
  return { text: src, terms };
}

export function nodeSelectorMatches(
  sel: CompiledNodeSelector,
  labels: Record<string, string> | undefined,
): boolean {
  const l = labels ?? {};
  for (const t of sel.terms) {
    const has = Object.hasOwn(l, t.key);
    const v = l[t.key];
    switch (t.op) {
      case 'has':
        if (!has) return false;
        break;
      case 'notHas':
        if (has) return false;
        break;
      case 'eq':
        if (!has || v !== t.value) return false;
        break;
      case 'ne':
        if (has && v === t.value) return false;
        break;
      case 'in':
        if (!has || !t.values.includes(v!)) return false;
        break;
      case 'notIn':
        if (has && t.values.includes(v!)) return false;
        break;
    }
  }
  return true;
}
