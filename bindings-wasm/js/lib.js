// The public API of the npm package `stratacache`. Import the package, not
// this file: the entry points (workerd.js, node.js, browser.js) instantiate
// the wasm module first.

export { LocalCache } from './local.js';
export { RequestCache } from './request.js';
export { TieredCache, StratacacheError } from './tiered.js';
export { Key, safeKey, isValidKey, plainKey, signingKeysFromSecret } from './key.js';
export {
  kvTier,
  cacheApiTier,
  memoryTier,
  KV_VALUE_LIMIT,
  KV_ITEM_LIMIT,
  KV_BULK_GET_MAX,
  KV_MIN_EXPIRATION_TTL_S,
  KV_MIN_CACHE_TTL_S,
} from './adapters.js';
export { serialize, deserialize, CODEC_RAW, CODEC_JSON } from './codec.js';
