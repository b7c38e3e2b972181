/**
 * Kubernetes label selectors (metav1.LabelSelector): validation, matching, and a canonical text.
 *
 * Semantics follow apimachinery's `LabelSelectorAsSelector`: every matchLabels pair and every
 * matchExpressions requirement must hold (AND); `{}` matches everything. `In` needs the key with
 * one of the values; `NotIn` holds when the key is absent or its value is not listed; `Exists` /
 * `DoesNotExist` test the key only. As the API server does, `In`/`NotIn` need at least one value
 * and `Exists`/`DoesNotExist` must have none; anything else is a `SelectorError`.
 *
 * The canonical text (sorted pairs, sorted values, requirements sorted) names a selector
 * independently of how it was written, so two policies selecting the same pods share one ipset.
 * Pure: imports nothing from Node.
 */
import type { LabelSelector, Labels } from './types.js';

export class SelectorError extends Error {
  override name = 'SelectorError';
}

interface Req {
  key: string;
  op: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values: string[];
}

/** A validated selector in a form that is quick to match. */
export interface CompiledSelector {
  reqs: Req[];
  canonical: string;
}

export function compileSelector(sel: LabelSelector | undefined | null, field: string): CompiledSelector {
  if (sel === undefined || sel === null) return { reqs: [], canonical: '{}' };
  if (typeof sel !== 'object' || Array.isArray(sel))
    throw new SelectorError(`${field}: not a label selector`);
  const reqs: Req[] = [];
  const ml = sel.matchLabels;
  if (ml !== undefined && ml !== null) {
    if (typeof ml !== 'object' || Array.isArray(ml))
      throw new SelectorError(`${field}.matchLabels: not a map`);
    for (const [k, v] of Object.entries(ml)) {
      if (typeof v !== 'string') throw new SelectorError(`${field}.matchLabels.${k}: value is not a string`);
      reqs.push({ key: k, op: 'In', values: [v] });
    }
  }
  const me = sel.matchExpressions;
  if (me !== undefined && me !== null) {
    if (!Array.isArray(me)) throw new SelectorError(`${field}.matchExpressions: not a list`);
    me.forEach((r, i) => {
      const f = `${field}.matchExpressions[${i}]`;
      if (!r || typeof r.key !== 'string' || r.key === '') throw new SelectorError(`${f}.key: missing`);
      const values = r.values ?? [];
      if (!Array.isArray(values) || values.some((v) => typeof v !== 'string')) {
        throw new SelectorError(`${f}.values: not a list of strings`);
      }
      switch (r.operator) {
        case 'In':
        case 'NotIn':
          if (values.length === 0)
            throw new SelectorError(`${f}.values: ${r.operator} needs at least one value`);
          break;
        case 'Exists':
        case 'DoesNotExist':
          if (values.length > 0) throw new SelectorError(`${f}.values: ${r.operator} takes no values`);
          break;
        default:
          throw new SelectorError(
            `${f}.operator: ${JSON.stringify(r.operator)} is not In, NotIn, Exists or DoesNotExist`,
          );
      }
      reqs.push({ key: r.key, op: r.operator, values: [...new Set(values)].sort() });
    });
  }
  const parts = reqs.map((r) => `${r.key} ${r.op} (${r.values.join(',')})`);
  const canonical = `{${[...new Set(parts)].sort().join('; ')}}`;
  return { reqs, canonical };
}

export function selectorMatches(sel: CompiledSelector, labels: Labels | undefined): boolean {
  for (const r of sel.reqs) {
    const has = labels !== undefined && Object.hasOwn(labels, r.key);
    switch (r.op) {
      case 'In':
        if (!has || !r.values.includes(labels[r.key]!)) return false;
        break;
      case 'NotIn':
        if (has && r.values.includes(labels[r.key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}
