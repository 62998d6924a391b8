/**
 * API keys: a request presents `Authorization: Bearer KEY` (or `x-api-key: KEY`); the key's sha256
 * is looked up among the configured keys, compared in constant time. The result is the request's
 * Access: the datasets it may see (passed into every shard search) and whether it may administer.
 * Without keys the service is open — allowed only on a loopback host (checked at start-up).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { ApiKeyEntry } from './config.js';
import { ApiError } from './errors.js';

export interface Access {
  /** Key id (for logs and rate limits), or `open` without keys. */
  keyId: string;
  /** Datasets this caller may see; null: all. */
  datasets: string[] | null;
  admin: boolean;
  rateLimitPerMinute?: number;
}

export const OPEN_ACCESS: Access = { keyId: 'open', datasets: null, admin: true };

export class KeyRing {
  private readonly byHash: Array<{ hash: Buffer; entry: ApiKeyEntry }>;

  constructor(keys: ApiKeyEntry[]) {
    this.byHash = keys.map((entry) => ({ hash: Buffer.from(entry.sha256, 'hex'), entry }));
  }

  get open(): boolean {
    return this.byHash.length === 0;
  }

  /** The caller's access. @throws ApiError UNAUTHORIZED for a missing or unknown key */
  authenticate(request: FastifyRequest): Access {
    if (this.open) return OPEN_ACCESS;
    const key = presentedKey(request);
    if (!key) throw new ApiError('UNAUTHORIZED', 'this server requires an API key: send "Authorization: Bearer <key>"');
    const hash = createHash('sha256').update(key, 'utf8').digest();
    let found: ApiKeyEntry | undefined;
    // Every entry is compared, so timing says nothing about which prefix matched.
    for (const candidate of this.byHash) if (timingSafeEqual(candidate.hash, hash)) found = candidate.entry;
    if (!found) throw new ApiError('UNAUTHORIZED', 'unknown API key');
    return {
      keyId: found.id,
      datasets: found.datasets.includes('*') ? null : [...found.datasets],
      admin: found.admin,
      ...(found.rateLimitPerMinute ? { rateLimitPerMinute: found.rateLimitPerMinute } : {}),
    };
  }
}

function presentedKey(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw new ApiError('UNAUTHORIZED', 'the Authorization header must be "Bearer <key>"');
    return match[1];
  }
  const apiKey = request.headers['x-api-key'];
  return typeof apiKey === 'string' && apiKey.length > 0 ? apiKey : undefined;
}

/** sha256 hex of a key, as the keys file stores it. */
export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}
