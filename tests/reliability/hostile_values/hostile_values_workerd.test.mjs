// Hostile values in the edge tiers in real workerd (Miniflare, loopback):
// kvTier over a Workers KV namespace (corrupted values written back as the
// adapter's base64 text, and as raw binary by another writer) and
// cacheApiTier over caches.default. The caches run in the worker
// (hv_worker.mjs); the corruption and the assertions (hv_check.mjs, the same
// as for the Node tiers) run here.
//
// Run: bash scripts/test-reliability.sh   (or
//   node --test tests/reliability/hostile_values/hostile_values_workerd.test.mjs)
import { test, describe, before, after } from 'node:test';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { CASES, REPO, SECRET } from './hv_cases.mjs';
import { runCase } from './hv_check.mjs';
import { devImport } from './hv_cases.mjs';

const here = path.join(REPO, 'tests/reliability/hostile_values');
const RUN = randomBytes(4).toString('hex');
let mf;
let dir;

before(async () => {
  const { Miniflare } = await devImport('miniflare');
  dir = mkdtempSync(path.join(tmpdir(), 'stratacache-hv-'));
  // Bundled as the edge example is (its build.mjs): workerd's conditions,
  // the package's .wasm kept as a module.
  const example = await import(pathToFileURL(path.join(REPO, 'examples/edge_worker/build.mjs')).href);
  const { modules } = await example.bundle(dir, path.join(here, 'hv_worker.mjs'));
  mf = new Miniflare({
    modules,
    modulesRoot: dir,
    compatibilityDate: '2025-01-01',
    kvNamespaces: { CACHE: 'hv-cache' },
    bindings: { SECRET },
    host: '127.0.0.1',
  });
  await mf.ready;
});

after(async () => {
  await mf?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function post(pathname, body) {
  const res = await mf.dispatchFetch(`http://hv.test${pathname}`, { method: 'POST', body: JSON.stringify(body) });
  const out = await res.json();
  if (res.status !== 200) {
    const error = new Error(out.error);
    error.kind = out.kind;
    throw error;
  }
  return out;
}

const b64 = (bytes) => (bytes === null || bytes === undefined ? null : Buffer.from(bytes).toString('base64'));
const unb64 = (text) => (text === null ? null : new Uint8Array(Buffer.from(text, 'base64')));

/** hv_observe.mjs's phases, run inside the worker (one request each). */
function workerPhases(tier, form) {
  return {
    write: async (args) => {
      const w = await post('/phase', { phase: 'write', tier, form, ...args });
      return { ...w, valid: unb64(w.valid), otherValid: unb64(w.otherValid) };
    },
    read: async ({ bad, ...args }) => {
      const r = await post('/phase', { phase: 'read', tier, form, bad: b64(bad), ...args });
      return { ...r, stored: unb64(r.stored) };
    },
  };
}

describe('hostile values in workerd tiers', { concurrency: 8 }, () => {
  for (const tier of ['kv', 'kv_binary', 'cache_api']) {
    for (const kase of CASES) {
      test(`hostile value [workerd_${tier}-${kase.name}]`, { timeout: 120_000 }, async () => {
        const key = `hv:${RUN}:${tier}:${kase.name}`;
        const realTier = tier === 'kv_binary' ? 'kv' : tier;
        await runCase({ phases: workerPhases(realTier, tier === 'kv_binary' ? 'binary' : 'text'), key, other: `${key}:other`, kase });
      });
    }
  }
});
