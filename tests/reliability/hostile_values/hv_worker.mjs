// The worker of hostile_values_workerd.test.mjs: stratacache over Workers KV
// (kvTier) and the Cache API (cacheApiTier) in real workerd. One endpoint:
//   POST /phase {phase: write|read, tier: kv|cache_api, form: text|binary, key, ...}
// runs hv_observe.mjs's phase here (fresh TieredCaches over the tier, raw
// access to the server through the binding) and answers its observations;
// byte arrays travel as base64.
import { TieredCache, kvTier, cacheApiTier } from '../../../bindings-wasm/pkg/workerd.js';
import { writePhase, readPhase } from './hv_observe.mjs';

const BASE = 'https://stratacache.internal/';
const READER_MAX_PAYLOAD = 64 * 1024;

function b64(bytes) {
  if (bytes === null || bytes === undefined) return null;
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function unb64(text) {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function adapter(env, tier) {
  if (tier === 'kv') return kvTier(env.CACHE, { name: 'kv' });
  if (tier === 'cache_api') return cacheApiTier(caches.default, { name: 'cache', baseUrl: BASE });
  throw new Error(`unknown tier ${tier}`);
}

function cachesOf(env, tier) {
  const errors = [];
  const make = (extra = {}) =>
    new TieredCache({
      tiers: [adapter(env, tier)],
      local: false,
      signingKeys: [{ id: '2025a', secret: env.SECRET }],
      compressAt: null,
      cooldown: { failuresToTrip: 1000, cooldownMs: 10 },
      onError: (e) => errors.push(String(e?.message ?? e)),
      ...extra,
    });
  return {
    errors: async () => errors.splice(0),
    writer: () => make(),
    reader: (extra) => make({ maxPayloadLen: READER_MAX_PAYLOAD, ...extra }),
  };
}

/** The server without stratacache. get: the bytes the adapter hands the core;
 * stored: the bytes as stored (KV text form: base64-decoded); put: KV as the
 * adapter's base64 text, or as binary (another writer's bytes). */
function rawOf(env, tier, form) {
  if (tier === 'cache_api') {
    const url = (key) => BASE + encodeURIComponent(key);
    const get = async (key) => {
      const res = await caches.default.match(url(key));
      return res ? new Uint8Array(await res.arrayBuffer()) : null;
    };
    return {
      get,
      put: (key, bytes) =>
        caches.default.put(url(key), new Response(bytes, { headers: { 'Cache-Control': 'max-age=300', 'Content-Type': 'application/octet-stream' } })),
    };
  }
  return {
    get: async (key) => (await adapter(env, tier).getMany([key]))[0],
    stored: async (key) => {
      if (form === 'binary') {
        const value = await env.CACHE.get(key, 'arrayBuffer');
        return value === null ? null : new Uint8Array(value);
      }
      const text = await env.CACHE.get(key, 'text');
      return text === null ? null : unb64(text);
    },
    put: (key, bytes) => env.CACHE.put(key, form === 'binary' ? bytes : b64(bytes)),
  };
}

export default {
  async fetch(request, env) {
    try {
      const { phase, tier, form, bad, ...args } = await request.json();
      const ctx = { caches: cachesOf(env, tier), raw: rawOf(env, tier, form) };
      if (phase === 'write') {
        const w = await writePhase({ ...ctx, ...args });
        return Response.json({ ...w, valid: b64(w.valid), otherValid: b64(w.otherValid) });
      }
      if (phase === 'read') {
        const r = await readPhase({ ...ctx, ...args, bad: bad === null || bad === undefined ? undefined : unb64(bad) });
        return Response.json({ ...r, stored: b64(r.stored) });
      }
      return new Response('unknown phase', { status: 404 });
    } catch (error) {
      return Response.json({ error: String(error?.stack ?? error), kind: error?.kind ?? null }, { status: 500 });
    }
  },
};
