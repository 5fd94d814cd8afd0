// An edge worker serving the course outlines of the Django example
// (examples/django_outline) close to learners:
//
//   local tier (this isolate) -> Workers KV (shared by every isolate)
//     -> the Django origin's own tiers (memcached, S3), read as raw entries
//     -> the Django origin's outline endpoint (the loader)
//
// Keys and envelopes are the ones Django writes: the same `Key` (format
// tiercache-key-1), the JSON codec, the same signing secret. A value found at
// the origin is copied into KV byte for byte, and Python can read what this
// worker wrote. Publishing a course in Django bumps its version; once this
// worker sees the new version (it asks the origin at most every
// VERSION_TTL_MS), it builds the new key: nothing is ever invalidated.
//
// Bindings (see wrangler.toml): CACHE (KV namespace), ORIGIN (the Django
// site's URL), SIGNING_SECRET (Django's DEMO_SIGNING_SECRET), EDGE_TOKEN
// (Django's DEMO_EDGE_TOKEN), VERSION_TTL_MS (optional, default 5000).
//
// Routes:
//   GET /courses/<course_id>/outline.json  the outline; headers x-stratacache-key,
//                                          x-stratacache-source, x-course-version
//   GET /_stats                            counters of this isolate
import { TieredCache, RequestCache, Key, kvTier } from 'stratacache';

/** The key Django builds in courses/caching.py: Key("course_outline", 1)(course_id, version). */
export const OUTLINE = new Key('course_outline', 1);
const VERSION = new Key('course_version', 1);
const ORIGIN_BATCH = 100; // the origin's /edge/entries limit

// Per isolate: caches live as long as the isolate does.
let outlines;
let versions;
const counts = { requests: 0, originEntryCalls: 0, originLoads: 0, versionFetches: 0, originRetries: 0 };

/** Base64 text to bytes (the origin sends raw entries as base64). */
function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * GET from the origin, once more if the connection failed before an answer
 * came (a kept-alive connection the origin had just closed): GETs are
 * idempotent, and a page should not fail over a stale socket.
 */
async function originFetch(url, init) {
  try {
    return await fetch(url, init);
  } catch {
    counts.originRetries++;
    return fetch(url, init);
  }
}

/**
 * The Django origin as a read-only remote tier: `getMany` returns the raw
 * bytes (envelopes, chunk manifests, chunks) Django's own tiers hold under
 * those keys, in one HTTP request per 100 keys. Writes are the origin's
 * business, so they are no-ops here.
 */
export function originTier(env) {
  return {
    name: 'origin',
    kind: 'storage', // the slowest tier: never back-filled into
    backfill: false,
    async getMany(keys) {
      const out = [];
      for (let i = 0; i < keys.length; i += ORIGIN_BATCH) {
        const url = new URL('/edge/entries', env.ORIGIN);
        for (const key of keys.slice(i, i + ORIGIN_BATCH)) url.searchParams.append('key', key);
        counts.originEntryCalls++;
        const response = await originFetch(url, { headers: { 'x-edge-token': env.EDGE_TOKEN ?? '' } });
        if (!response.ok) {
          throw new Error(`origin ${url.pathname} answered ${response.status}: ${(await response.text()).slice(0, 200)}`);
        }
        const { values } = await response.json();
        for (const value of values) out.push(value === null ? null : fromBase64(value));
      }
      return out;
    },
    async setMany() {},
    async deleteMany() {},
  };
}

function caches(env) {
  if (!outlines) {
    if (!env.ORIGIN) throw new Error('the ORIGIN binding (the Django site, such as http://127.0.0.1:8000) is not set');
    if (!env.SIGNING_SECRET) throw new Error('the SIGNING_SECRET binding (Django\'s DEMO_SIGNING_SECRET) is not set');
    outlines = new TieredCache({
      // KV answers in tens of milliseconds; a KV that hangs costs a read
      // at most this before the origin is asked (and, after 3 such
      // failures, KV is skipped for the cool-down).
      tiers: [kvTier(env.CACHE, { timeoutMs: 1000 }), originTier(env)],
      // LOCAL_TTL_MS: how long an isolate keeps an outline (default 60 s).
      local: { maxEntries: 1000, maxBytes: 64 << 20, ttlMs: Number(env.LOCAL_TTL_MS ?? 60_000) },
      signingKeys: [{ id: 'demo1', secret: env.SIGNING_SECRET }],
      defaultTtlMs: 24 * 3600 * 1000, // versioned keys never go stale
    });
    const versionTtlMs = Number(env.VERSION_TTL_MS ?? 5000);
    // Versions live in this isolate only, briefly: one origin call per
    // course per VERSION_TTL_MS, however many requests (single flight).
    versions = versionTtlMs > 0
      ? new TieredCache({ tiers: [], local: { maxEntries: 10_000, ttlMs: versionTtlMs }, defaultTtlMs: versionTtlMs })
      : null;
  }
  return { outlines, versions };
}

async function fetchVersion(env, courseId) {
  counts.versionFetches++;
  const url = new URL(`/api/courses/${encodeURIComponent(courseId)}/version`, env.ORIGIN);
  const response = await originFetch(url);
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`origin ${url.pathname} answered ${response.status}`);
  return (await response.json()).version;
}

/** The published version of `courseId` (null: no such course). */
async function publishedVersion(env, courseId) {
  const { versions } = caches(env);
  if (!versions) return fetchVersion(env, courseId);
  return versions.getOrLoad(VERSION.build(courseId), () => fetchVersion(env, courseId));
}

/** The outline of `courseId` at `version`, and the tier it came from. */
async function outline(env, ctx, courseId, version) {
  const { outlines } = caches(env);
  const key = OUTLINE.build(courseId, version);
  const options = { request: new RequestCache(), waitUntil: (p) => ctx.waitUntil(p) };
  const found = await outlines.get(key, options);
  if (found.hit) return { key, value: found.value, source: found.source };
  // No tier has it, not even Django's: ask Django to build it (its own
  // get_or_load, under the same key), and keep our envelope of it in KV.
  let loaded = false;
  const value = await outlines.getOrLoad(
    key,
    async () => {
      loaded = true;
      counts.originLoads++;
      const url = new URL(`/api/courses/${encodeURIComponent(courseId)}/outline`, env.ORIGIN);
      url.searchParams.set('version', String(version));
      const response = await originFetch(url);
      if (!response.ok) throw new Error(`origin ${url.pathname} answered ${response.status}`);
      return response.json();
    },
    options,
  );
  return { key, value, source: loaded ? 'loader' : 'flight' };
}

function json(body, status = 200, headers = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
  });
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    counts.requests++;
    try {
      const match = url.pathname.match(/^\/courses\/([^/]+)\/outline\.json$/);
      if (match && request.method === 'GET') {
        const courseId = decodeURIComponent(match[1]);
        const version = await publishedVersion(env, courseId);
        if (version === null) return json({ error: `no course ${courseId}` }, 404);
        const { key, value, source } = await outline(env, ctx, courseId, version);
        return json(value, 200, {
          'x-stratacache-key': key,
          'x-stratacache-source': source,
          'x-course-version': String(version),
        });
      }
      if (url.pathname === '/_stats') {
        const { outlines } = caches(env);
        return json({ counts, stats: outlines.stats() });
      }
      return json({ error: 'not found: try /courses/<course_id>/outline.json' }, 404);
    } catch (error) {
      return json({ error: String(error?.message ?? error) }, 502);
    }
  },
};
