/**
 * Reading a YAML file a user wrote, field by field, for every configuration Twill reads: the
 * speaker's (bgp/config.ts), containerlab topologies (lab/clab.ts) and the agent's. Each reader
 * checks its own document; this module gives them one way to parse and to report.
 *
 * What it does:
 * - `loadYaml` parses YAML 1.2 (the `yaml` package, core schema: `yes` is a string, not true;
 *   duplicate keys are errors) into plain data; syntax errors carry line and column.
 * - Problems are collected in `Issues`, each naming the field's path and the expected form,
 *   `neighbors[1].holdTime: 2 is not 0 or 3..65535`, and thrown together as one `ConfigError`
 *   with a line per problem, so one run shows them all.
 * - `checkKeys` rejects unknown keys with the nearest known one (`holdtime` -> `holdTime`,
 *   `suggestKey`): a typo must not fall back to a default silently. `has` makes a key present
 *   with no value (`holdTime:`) an error for the same reason.
 * - Readers for the common kinds of field (integers in a range, booleans, strings, IPv4 and IPv6
 *   addresses normalised to canonical text, RFC 5952 for IPv6) return the value, or undefined
 *   after recording an issue.
 *
 * What it does not do: read files (callers do; nothing here imports Node), or know any
 * document's fields.
 */
import { LineCounter, parseDocument } from 'yaml';
import { AddrError, formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../net/addr.js';

// ---------------------------------------------------------------------------------------------
// Issues

export interface ConfigIssue {
  /** Field path such as `neighbors[1].holdTime`; '' for the document as a whole. */
  path: string;
  message: string;
  /** 1-based position in the text, for YAML syntax errors. */
  line?: number;
  col?: number;
}

/** A file the user wrote is wrong. The message has one line per issue. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    readonly source: string,
    readonly issues: readonly ConfigIssue[],
  ) {
    super(issues.map((i) => formatIssue(source, i)).join('\n'));
  }
}

function formatIssue(source: string, i: ConfigIssue): string {
  const where = i.line === undefined ? source : `${source}:${i.line}:${i.col ?? 1}`;
  return i.path === '' ? `${where}: ${i.message}` : `${where}: ${i.path}: ${i.message}`;
}

/** Collects issues while a document is checked. */
export class Issues {
  readonly list: ConfigIssue[] = [];
  add(path: string, message: string): void {
    this.list.push({ path, message });
  }
  /** Throw a ConfigError if anything was added. */
  throwIfAny(source: string): void {
    if (this.list.length > 0) throw new ConfigError(source, this.list);
  }
}

/**
 * Parse YAML text into plain data. Syntax errors (including duplicate keys) throw a ConfigError
 * with line and column; an empty document is `null`.
 */
export function loadYaml(text: string, source: string): unknown {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      source,
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return { path: '', message: e.message.split('\n')[0] ?? e.code, line: pos.line, col: pos.col };
      }),
    );
  }
  try {
    return doc.toJS({ maxAliasCount: 1000 });
  } catch (err) {
    // An alias to no anchor, or an alias bomb: the text is not usable data.
    if (!(err instanceof Error)) throw err;
    throw new ConfigError(source, [{ path: '', message: err.message.split('\n')[0] ?? 'bad YAML' }]);
  }
}

/** How a value is shown in an error: strings quoted, containers by their kind. */
export function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null || v === undefined) return 'no value';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}

export function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** Edit distance with adjacent transpositions (optimal string alignment). */
function distance(a: string, b: string): number {
  const d: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    d.push([i]);
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        d[0]!.push(j);
        continue;
      }
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]!.push(v);
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The known key a mistyped one most likely meant, if any is close enough: the same word in
 * another case or with - or _, a prefix (`bind` for `binds`), a few edits away (`holdtime`,
 * `conectRetry`), or an abbreviation whose letters appear in order (`iface` for `interface`).
 */
export function suggestKey(key: string, known: readonly string[]): string | undefined {
  const norm = (k: string) => k.toLowerCase().replace(/[-_]/g, '');
  const lower = norm(key);
  if (lower === '') return undefined;
  const exact = known.find((k) => norm(k) === lower);
  if (exact !== undefined) return exact;
  if (lower.length >= 3) {
    const prefix = known.find((k) => norm(k).startsWith(lower) || lower.startsWith(norm(k)));
    if (prefix !== undefined) return prefix;
  }
  let best: string | undefined;
  let bestScore = Number.POSITIVE_INFINITY;
  for (const k of known) {
    // Ties go to a key with the same first letter.
    const score = distance(lower, norm(k)) * 2 + (norm(k)[0] === lower[0] ? 0 : 1);
    if (score < bestScore) {
      best = k;
      bestScore = score;
    }
  }
  const limit = Math.min(2, Math.floor(key.length / 3));
  if (bestScore <= limit * 2 + 1) return best;
  if (lower.length >= 3) {
    const abbrev = known.filter((k) => norm(k)[0] === lower[0] && isSubsequence(lower, norm(k)));
    if (abbrev.length === 1) return abbrev[0];
  }
  return undefined;
}

function isSubsequence(short: string, long: string): boolean {
  let i = 0;
  for (let j = 0; j < long.length && i < short.length; j++) if (long[j] === short[i]) i++;
  return i === short.length;
}

/** Report each key of `obj` that is not in `known` (or `ignored`), with a suggestion. */
export function checkKeys(
  obj: Record<string, unknown>,
  path: string,
  known: readonly string[],
  issues: Issues,
  ignored: readonly string[] = [],
): void {
  for (const key of Object.keys(obj)) {
    if (known.includes(key) || ignored.includes(key)) continue;
    const hint = suggestKey(key, known);
    issues.add(
      join(path, key),
      hint !== undefined
        ? `unknown field (did you mean ${hint}?)`
        : `unknown field (expected one of: ${known.join(', ')})`,
    );
  }
}

export function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

// ---------------------------------------------------------------------------------------------
// Field readers: each returns the value, or undefined after recording an issue.

export function readInt(
  v: unknown,
  path: string,
  min: number,
  max: number,
  issues: Issues,
  expected?: string,
) {
  if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) return v;
  issues.add(path, `${show(v)} is not ${expected ?? `an integer ${min}..${max}`}`);
  return undefined;
}

export function readBool(v: unknown, path: string, issues: Issues): boolean | undefined {
  if (typeof v === 'boolean') return v;
  issues.add(path, `${show(v)} is not true or false`);
  return undefined;
}

export function readString(v: unknown, path: string, issues: Issues): string | undefined {
  if (typeof v === 'string') return v;
  issues.add(path, `${show(v)} is not a string`);
  return undefined;
}

export type Ip = { version: 4 | 6; text: string; bytes: Uint8Array };

/** Parse an IPv4 or IPv6 literal into canonical text, or undefined. */
export function parseIp(text: string): Ip | undefined {
  try {
    if (text.includes(':')) {
      const bytes = parseIpv6(text);
      return { version: 6, text: formatIpv6(bytes), bytes };
    }
    const n = parseIpv4(text);
    const bytes = new Uint8Array([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
    return { version: 4, text: formatIpv4(n), bytes };
  } catch (err) {
    if (err instanceof AddrError) return undefined;
    throw err;
  }
}

export function readIp(v: unknown, path: string, issues: Issues): Ip | undefined {
  const ip = typeof v === 'string' ? parseIp(v) : undefined;
  if (ip === undefined) issues.add(path, `${show(v)} is not an IPv4 or IPv6 address`);
  return ip;
}

/** Present with a value: absent keys take defaults, `key:` with nothing is an error. */
export function has(obj: Record<string, unknown>, key: string, path: string, issues: Issues): boolean {
  if (!(key in obj)) return false;
  if (obj[key] === null || obj[key] === undefined) {
    issues.add(join(path, key), 'has no value (remove the line to use the default)');
    return false;
  }
  return true;
}
