// Key: the core's versioned key builder (format tiercache-key-1).

import { KeyBuilder, safeKey as coreSafeKey, isValidKey as coreIsValidKey, plainKey as corePlainKey, signingKeyFromSecret as coreSigningKey } from './stratacache_core.js';

function versionString(version) {
  if (typeof version === 'bigint') return version.toString();
  if (typeof version === 'number') {
    if (!Number.isSafeInteger(version) || version < 0) throw new TypeError(`stratacache: key version ${version} must be a whole number >= 0 (use a bigint or decimal string above 2^53)`);
    return String(version);
  }
  if (typeof version === 'string') return version;
  throw new TypeError(`stratacache: key version must be a number, bigint or decimal string, got ${typeof version}`);
}

// A JS string may hold lone surrogates (half of a UTF-16 pair). They have no
// UTF-8 form: passing them to the core would replace each with U+FFFD, so
// '\ud800', '\udc00' and '\ufffd' would share a key. They are refused, as
// Python refuses them (ValueError).
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

export function checkWellFormed(text, what) {
  const ok = typeof text.isWellFormed === 'function' ? text.isWellFormed() : !LONE_SURROGATE.test(text);
  if (!ok) {
    const at = text.search(LONE_SURROGATE);
    const unit = text.charCodeAt(at).toString(16).toUpperCase();
    throw new TypeError(`stratacache: ${what} holds a lone surrogate (U+${unit} at index ${at}), which has no UTF-8 form: pass well-formed text (String#toWellFormed() if replacing it with U+FFFD is acceptable), or the raw bytes as a Uint8Array`);
  }
}

/**
 * Builds keys `{namespace}|v{version}|{part}|...`, byte for byte as the Rust
 * and Python hosts do. Bump the version to invalidate every key at once.
 */
export class Key {
  #builder;
  #namespace;
  #version;

  constructor(namespace, version = 1, options = {}) {
    if (typeof namespace !== 'string') throw new TypeError(`stratacache: a key namespace must be a string, got ${typeof namespace}`);
    const maxLen = options.maxLen ?? 0;
    // The core's range check (and message) for maxLen, through safeKey.
    if (maxLen !== 0 && coreSafeKey('k', maxLen) === '') refused(null, maxLen);
    const text = versionString(version);
    this.#builder = new KeyBuilder(namespace, text, maxLen);
    // Accepted by the core (a whole number to 2^64 - 1): its canonical form.
    this.#namespace = namespace;
    this.#version = BigInt(text).toString();
  }

  /** The key for `parts`: strings, safe integers, bigints, Uint8Arrays. */
  build(...parts) {
    for (let i = 0; i < parts.length; i++) {
      if (typeof parts[i] === 'string') checkWellFormed(parts[i], `key part ${i}`);
    }
    return this.#builder.build(parts);
  }

  get namespace() {
    return this.#namespace;
  }

  /** The version, as a decimal string. */
  get version() {
    return this.#version;
  }

  get maxLen() {
    return this.#builder.maxLen;
  }
}

/** Any non-empty string as a valid key of at most `maxLen` bytes (default 200). */
export function safeKey(raw, maxLen = 0) {
  if (typeof raw !== 'string') throw new TypeError(`stratacache: safeKey needs a string, got ${raw === null ? 'null' : typeof raw}`);
  checkWellFormed(raw, 'the key');
  return coreSafeKey(raw, maxLen) || refused(raw, maxLen);
}

/** The core's KeyError for what safeKey/plainKey answered with "" (messages built here: wasm size). */
function refused(raw, maxLen) {
  if (raw === '') throw new TypeError('cache key is empty: memcached refuses empty keys; pass a non-empty key');
  throw new RangeError(`maximum key length ${maxLen} is out of range: choose a length from 64 to 250 bytes (250 is memcached's limit; 64 leaves room for a readable prefix and the digest)`);
}

/** True if every tier accepts `key` as it is (1-250 printable ASCII bytes, no spaces). */
export function isValidKey(key) {
  return typeof key === 'string' && coreIsValidKey(key);
}

/**
 * The remote key the caches use for a plain string key (format
 * stratacache-plain-key-1, the core's plainKey): a valid memcached key not
 * starting with `%~` as it is, any other string `%~` and its escaping. The
 * same string as in Python and Rust, so a key Django writes is read here.
 */
export function plainKey(raw, maxLen = 0) {
  if (typeof raw !== 'string') throw new TypeError(`stratacache: plainKey needs a string, got ${raw === null ? 'null' : typeof raw}`);
  checkWellFormed(raw, 'the key');
  return corePlainKey(raw, maxLen) || refused(null, maxLen);
}


/**
 * Signing keys `[{ id, secret }]` derived from an application secret
 * exactly as Python's signing_keys_from_secret derives them, so the edge
 * reads what Django signs: pass the same secret and key id (Django's
 * default integration uses the id "django").
 */
export function signingKeysFromSecret(secret, keyId = 'k1') {
  let bytes = secret;
  if (typeof secret === 'string') {
    checkWellFormed(secret, 'the secret');
    bytes = new TextEncoder().encode(secret);
  } else if (secret instanceof ArrayBuffer) bytes = new Uint8Array(secret);
  if (!(bytes instanceof Uint8Array)) throw new TypeError('stratacache: signingKeysFromSecret needs a secret (string or Uint8Array)');
  const key = coreSigningKey(bytes);
  // The core's EmptySecret (an empty key back: no error formatting in wasm).
  if (key.length === 0) throw new TypeError('the secret to derive signing keys from is empty: pass the application secret (e.g. SECRET_KEY)');
  return [{ id: keyId, secret: key }];
}
