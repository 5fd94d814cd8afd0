// A worker using the package as an edge project would: imported by name,
// bundled by esbuild with workerd's conditions (as wrangler does), a KV
// namespace as the remote tier. Per-isolate state lives at module scope.
import { TieredCache, RequestCache, kvTier, Key } from 'stratacache';

let loads = 0;
let kvGets = 0;
let cache;
const errors = [];

/** The KV binding, with bulk and single gets counted. */
function counted(kv) {
  return {
    get: (keys, options) => {
      kvGets++;
      return kv.get(keys, options);
    },
    put: (...args) => kv.put(...args),
    delete: (...args) => kv.delete(...args),
  };
}

function cacheFor(env) {
  cache ??= new TieredCache({
    tiers: [kvTier(counted(env.CACHE))],
    local: { maxEntries: 1000, ttlMs: 60_000 },
    signingKeys: [{ id: '2025a', secret: env.SECRET }],
    onError: (e, tier) => errors.push(`${tier}: ${e?.message ?? e}`.slice(0, 300)),
  });
  return cache;
}

function randomText(n) {
  // Incompressible text (so the value stays over the KV limit after LZ4).
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(bytes.subarray(i, Math.min(n, i + 65536)));
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  let out = '';
  const parts = [];
  for (let i = 0; i < n; i++) {
    out += alphabet[bytes[i] & 63];
    if (out.length === 65536) {
      parts.push(out);
      out = '';
    }
  }
  parts.push(out);
  return parts.join('');
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const c = cacheFor(env);
    const requestCache = new RequestCache();
    const opts = { request: requestCache, waitUntil: (p) => ctx.waitUntil(p) };
    const json = (body) => Response.json({ ...body, loads, kvGets, isolate: env.NAME });
    try {
      switch (url.pathname) {
        case '/get': {
          const key = new Key('course_outline', 1).build(url.searchParams.get('course'));
          const delay = Number(url.searchParams.get('delay') ?? 0);
          const value = await c.getOrLoad(
            key,
            async () => {
              loads++;
              if (delay) await new Promise((r) => setTimeout(r, delay));
              return { course: url.searchParams.get('course'), sections: ['intro', 'week 1'] };
            },
            opts,
          );
          const again = await c.get(key, { request: requestCache });
          return json({ value, key, source: (await c.get(key)).source, requestSource: again.source });
        }
        case '/lookup': {
          const key = new Key('course_outline', 1).build(url.searchParams.get('course'));
          const r = await c.get(key);
          return json({ hit: r.hit, value: r.value ?? null, source: r.source, key });
        }
        case '/big': {
          const n = Number(url.searchParams.get('n'));
          const seed = url.searchParams.get('seed');
          const key = new Key('big', 1).build(seed);
          const found = await c.get(key);
          const r = found.hit ? found.value : await c.getOrLoad(key, async () => (loads++, { seed, text: randomText(n) }), opts);
          return json({ length: r.text.length, seed: r.seed, head: r.text.slice(0, 32), source: found.source });
        }
        case '/many': {
          const ks = Array.from({ length: 100 }, (_, i) => new Key('many', 1).build(i));
          const before = kvGets;
          const got = await c.getMany(ks);
          return json({ hits: got.filter((g) => g.hit).length, sources: [...new Set(got.map((g) => g.source))], kvCalls: kvGets - before });
        }
        case '/fill-many': {
          const ks = Array.from({ length: 100 }, (_, i) => new Key('many', 1).build(i));
          await c.getManyOrLoad(ks, async (missing) => missing.map((k) => `value of ${k}`), opts);
          return json({ ok: true });
        }
        case '/stats':
          return json({ stats: c.stats(), errors });
        default:
          return new Response('not found', { status: 404 });
      }
    } catch (error) {
      return Response.json({ error: String(error?.message ?? error), kind: error?.kind ?? null }, { status: 500 });
    }
  },
};
