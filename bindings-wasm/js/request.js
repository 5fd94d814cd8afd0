// RequestCache: the core's request cache, one per request.

import { RequestRef } from './stratacache_core.js';

export const SHARE = Symbol('stratacache.share');

function checkKey(key) {
  if (typeof key !== 'string') {
    throw new TypeError(`stratacache: request cache keys must be strings, got ${key === null ? 'null' : typeof key}`);
  }
}

/**
 * Values cached for one request (create it in `fetch`, let it go with the
 * request). Namespaced; a TieredCache read given `{ request }` answers from
 * it first and fills it.
 */
export class RequestCache {
  #ref = new RequestRef();

  /** The value under `key` (in `namespace`), or undefined. */
  get(key, namespace) {
    checkKey(key);
    return this.#ref.get(key, namespace)[0];
  }

  /** `{ hit: true, value }` or `{ hit: false }`: tells a stored undefined/null from a miss. */
  lookup(key, namespace) {
    checkKey(key);
    const r = this.#ref.get(key, namespace);
    return r.length ? { hit: true, value: r[0] } : { hit: false, value: undefined };
  }

  has(key, namespace) {
    checkKey(key);
    return this.#ref.get(key, namespace).length !== 0;
  }

  set(key, value, namespace) {
    checkKey(key);
    this.#ref.set(key, value, namespace);
    return this;
  }

  delete(key, namespace) {
    checkKey(key);
    return this.#ref.delete(key, namespace);
  }

  /** Empties `namespace`, or every namespace. */
  clear(namespace) {
    this.#ref.clear(namespace);
  }

  /** Entries in `namespace`, or in all namespaces. */
  size(namespace) {
    return this.#ref.size(namespace);
  }

  [SHARE]() {
    return this.#ref.share();
  }
}
