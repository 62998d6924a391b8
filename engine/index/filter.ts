/**
 * Metadata filters, as users write them in JSON:
 *   { "organ": "lung", "diagnosis": { "in": ["LUAD", "LUSC"] }, "label": { "not": "normal" } }
 * A value is equality; `{ in: [...] }` membership; `{ not: value | { in: [...] } }` negation.
 * Fields are looked up in the tile's metadata first (tile datasets: `label`), then the slide's.
 */
import { TesseraError } from '../errors.js';

type Scalar = string | number | boolean;
type Condition = { kind: 'eq'; value: string } | { kind: 'in'; values: Set<string> } | { kind: 'not'; inner: Condition };

export interface Filter {
  conditions: Array<{ field: string; condition: Condition }>;
}

export const EMPTY_FILTER: Filter = { conditions: [] };

/** Parses a filter object. @throws TesseraError INVALID_ARGUMENT naming the bad field. */
export function parseFilter(value: unknown): Filter {
  if (value === undefined || value === null) return EMPTY_FILTER;
  if (typeof value !== 'object' || Array.isArray(value)) throw new TesseraError('INVALID_ARGUMENT', `a filter must be a JSON object of field conditions, got ${JSON.stringify(value)}`);
  return { conditions: Object.entries(value as Record<string, unknown>).map(([field, raw]) => ({ field, condition: parseCondition(field, raw) })) };
}

function parseCondition(field: string, raw: unknown): Condition {
  if (isScalar(raw)) return { kind: 'eq', value: String(raw) };
  if (raw && typeof raw === 'object' && !Array.isArray(raw)) {
    const entries = Object.entries(raw as Record<string, unknown>);
    if (entries.length === 1) {
      const [operator, operand] = entries[0] as [string, unknown];
      if (operator === 'in' && Array.isArray(operand) && operand.every(isScalar)) return { kind: 'in', values: new Set(operand.map(String)) };
      if (operator === 'not') return { kind: 'not', inner: parseCondition(field, operand) };
    }
  }
  throw new TesseraError('INVALID_ARGUMENT', `filter field "${field}": expected a value, {"in": [values]} or {"not": condition}, got ${JSON.stringify(raw)}`);
}

function isScalar(value: unknown): value is Scalar {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
}

function holds(condition: Condition, value: string | undefined): boolean {
  switch (condition.kind) {
    case 'eq':
      return value === condition.value;
    case 'in':
      return value !== undefined && condition.values.has(value);
    case 'not':
      return !holds(condition.inner, value);
  }
}

/** True when every condition holds for the tile (its own metadata first, then its slide's). */
export function matches(filter: Filter, tileMetadata: Record<string, string> | undefined, slideMetadata: Record<string, string>): boolean {
  for (const { field, condition } of filter.conditions) {
    const value = tileMetadata?.[field] ?? slideMetadata[field];
    if (!holds(condition, value)) return false;
  }
  return true;
}

/** The dataset a slide belongs to, for API key scopes: its `dataset` metadata, else `default`. */
export function datasetOf(slideMetadata: Record<string, string>): string {
  return slideMetadata.dataset || 'default';
}
