// RequestCache: the core's request cache, one per request.

import { RequestRef } from './stratacache_core.js';
import { slots, fileValues } from './runtime.js';
import { checkKey } from './local.js';

export const SHARE = Symbol('stratacache.share');

/**
 * Values cached for one request (create it in `fetch`, let it go with the
 * request). Namespaced; a TieredCache read given `{ request }` answers from
 * it first and fills it.
 */
// `RequestRef#call` operations (src/request.rs).
const GET = 0, SET = 1, DELETE = 2, CLEAR = 3, SIZE = 4;
// What a get answers for a miss: a stored undefined or null is a hit.
const MISS = Symbol('miss');
const NONE = [];

// A collected request's values go at once, not at the next store anywhere:
// its core cache is freed here (the glue's own finalizer would free it, but
// not tell JS which slots it let go) and the freed slots are cleared.
const released =
  typeof FinalizationRegistry === 'undefined'
    ? { register() {} }
    : new FinalizationRegistry((ref) => {
        ref.free();
        fileValues(NONE);
      });

export class RequestCache {
  #ref = new RequestRef();

  constructor() {
    released.register(this, this.#ref);
  }

  /** The value under `key` (in `namespace`), or undefined. */
  get(key, namespace) {
    const value = this.#get(key, namespace);
    return value === MISS ? undefined : value;
  }

  /** `{ hit: true, value }` or `{ hit: false }`: tells a stored undefined/null from a miss. */
  lookup(key, namespace) {
    const value = this.#get(key, namespace);
    return value === MISS ? { hit: false, value: undefined } : { hit: true, value };
  }

  has(key, namespace) {
    return this.#get(key, namespace) !== MISS;
  }

  set(key, value, namespace) {
    checkKey(key);
    fileValues([value]);
    this.#ref.call(SET, key, namespace);
    return this;
  }

  delete(key, namespace) {
    checkKey(key);
    return this.#ref.call(DELETE, key, namespace) === 1;
  }

  /** Empties `namespace`, or every namespace. */
  clear(namespace) {
    this.#ref.call(CLEAR, '', namespace);
    fileValues(NONE);
  }

  /** Entries in `namespace`, or in all namespaces. */
  size(namespace) {
    return this.#ref.call(SIZE, '', namespace);
  }

  #get(key, namespace) {
    checkKey(key);
    const slot = this.#ref.call(GET, key, namespace);
    return slot < 0 ? MISS : slots[slot];
  }

  [SHARE]() {
    return this.#ref.share();
  }
}
