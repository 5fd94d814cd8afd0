// The edge worker in real workerd (Miniflare), in front of the real Django
// example (gunicorn, DEMO_MODE=stratacache) on loopback: two isolates sharing
// one KV namespace. The Django site uses the servers the STRATACACHE_*
// variables name (scripts/test-examples.sh starts them), else its embedded
// stand-ins.
//
// Needs the Python package and the example's requirements in
// STRATACACHE_PYTHON (default: the repository's .venv).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Miniflare } from 'miniflare';
import { bundle, workerOptions } from '../build.mjs';
import { startOrigin, python, sleep } from '../origin.mjs';

const SECRET = 'edge test: secret shared by Django and the worker';
const TOKEN = 'edge-test-token';
const VERSION_TTL_MS = 400;
const LARGE = 'course-v1:BigU+Everything+2025';
const ORGS = ['MITx', 'HarvardX', 'BerkeleyX', 'DelftX', 'UQx', 'EPFLx', 'KyotoUx', 'UBCx', 'IITBx', 'TsinghuaX'];
const course = (i) => `course-v1:${ORGS[i % 10]}+CS${String(100 + i).padStart(3, '0')}+2025`;

let dir;
let django;
let origin;
let mf;
let a;
let b;
let kv;

async function waitFor(what, fn, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const result = await fn();
      if (result) return result;
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const enc = (id) => encodeURIComponent(id);

/** GET (or POST) on the Django origin; JSON unless `text`. */
async function originCall(pathname, { method = 'GET', text = false, headers = {} } = {}) {
  const response = await fetch(new URL(pathname, origin), { method, headers });
  const body = text ? await response.text() : await response.json();
  assert.equal(response.status, 200, `${method} ${pathname}: ${JSON.stringify(body).slice(0, 300)}\n${django.log().slice(-2000)}`);
  return { response, body };
}

/** GET an outline from a worker: {status, body, source, key, version}. */
async function edge(worker, courseId) {
  const response = await worker.fetch(`http://edge.test/courses/${enc(courseId)}/outline.json`);
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body).slice(0, 500));
  return {
    body,
    source: response.headers.get('x-stratacache-source'),
    key: response.headers.get('x-stratacache-key'),
    version: Number(response.headers.get('x-course-version')),
  };
}

async function djangoCounters() {
  return (await originCall('/_demo/counters')).body.counters;
}

async function edgeStats(worker) {
  return (await (await worker.fetch('http://edge.test/_stats')).json()).counts;
}

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'stratacache-edge-'));
  // 1 ms per modulestore query: an outline takes tens of ms to build, so concurrent
  // requests overlap its load.
  django = await startOrigin({ DEMO_QUERY_DELAY_MS: '1', DEMO_SIGNING_SECRET: SECRET, DEMO_EDGE_TOKEN: TOKEN });
  origin = django.url;
  const bundled = await bundle(path.join(dir, 'worker'));
  const bindings = { ORIGIN: origin, SIGNING_SECRET: SECRET, EDGE_TOKEN: TOKEN, VERSION_TTL_MS: String(VERSION_TTL_MS) };
  mf = new Miniflare({ workers: ['a', 'b'].map((name) => workerOptions(name, bundled, bindings)), host: '127.0.0.1' });
  await mf.ready;
  a = await mf.getWorker('a');
  b = await mf.getWorker('b');
  kv = await mf.getKVNamespace('CACHE', 'a');
});

after(async () => {
  await mf?.dispose();
  await django?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('an outline Django has cached is read from the origin tier, and KV gets Django\'s exact bytes', async () => {
  const id = course(1);
  const page = await originCall(`/api/courses/${enc(id)}/outline`);
  const djangoKey = page.response.headers.get('x-cache-key');
  assert.equal(djangoKey, `course_outline|v1|${id}|#1`);
  const loadsBefore = (await djangoCounters()).outline_loads ?? 0;

  const first = await edge(a, id);
  assert.equal(first.key, djangoKey, 'the worker builds the key Django built');
  assert.equal(first.source, 'origin');
  assert.deepEqual(first.body, page.body);
  assert.equal((await djangoCounters()).outline_loads ?? 0, loadsBefore, 'Django did not rebuild the outline');

  // The back-fill into KV runs in waitUntil; it holds Django's envelope as it is.
  const stored = await waitFor('the KV back-fill', () => kv.get(djangoKey));
  const raw = await originCall(`/edge/entries?key=${enc(djangoKey)}`, { headers: { 'x-edge-token': TOKEN } });
  assert.equal(stored, raw.body.values[0], 'KV holds the bytes Django\'s tiers hold (base64)');
});

test('the next request hits the isolate\'s local tier; another isolate reads KV, not the origin', async () => {
  const id = course(1);
  const again = await edge(a, id);
  assert.equal(again.source, 'local');
  const before = await edgeStats(b);
  const other = await edge(b, id);
  assert.equal(other.source, 'kv');
  assert.deepEqual(other.body, again.body);
  const after = await edgeStats(b);
  assert.equal(after.originEntryCalls, before.originEntryCalls, 'isolate b never asked the origin for the entry');
  assert.equal(after.originLoads, before.originLoads);
});

test('the large course (an outline over 1 MiB of JSON) is served at the edge from Django\'s entry', async () => {
  const page = await originCall(`/api/courses/${enc(LARGE)}/outline`, { text: true });
  assert.ok(page.body.length > 1024 * 1024, `outline JSON is ${page.body.length} bytes`);
  const r = await edge(a, LARGE);
  assert.equal(r.source, 'origin');
  assert.equal(r.body.sections.length, 26);
  assert.deepEqual(r.body, JSON.parse(page.body));
});

test('an outline no tier has: the worker asks Django to build it under the same key, once for 8 requests', async () => {
  const id = course(7);
  const before = await djangoCounters();
  const results = await Promise.all(Array.from({ length: 8 }, () => edge(a, id)));
  const after = await djangoCounters();
  assert.equal((after.outline_loads ?? 0) - (before.outline_loads ?? 0), 1, 'Django built the outline once');
  assert.equal(results.filter((r) => r.source === 'loader').length, 1, JSON.stringify(results.map((r) => r.source)));
  for (const r of results) assert.equal(r.body.course_id, id);
  // Django then serves the same key from its own tiers: no second build.
  const page = await originCall(`/api/courses/${enc(id)}/outline`);
  assert.equal(page.response.headers.get('x-cache-key'), results[0].key);
  assert.equal((await djangoCounters()).outline_loads, after.outline_loads);
});

test('a publish in Django is seen at the edge once the version changes; nothing is deleted', async () => {
  const id = course(3);
  await originCall(`/courses/${enc(id)}/`, { text: true });
  const v1 = await edge(a, id);
  assert.equal(v1.version, 1);
  const published = await originCall(`/courses/${enc(id)}/publish`, { method: 'POST' });
  assert.equal(published.body.version, 2);
  await sleep(VERSION_TTL_MS + 100);
  const v2 = await edge(a, id);
  assert.equal(v2.version, 2);
  assert.equal(v2.key, `course_outline|v1|${id}|#2`);
  assert.match(v2.body.sections[0].title, /\(revision 2\)$/);
  assert.notDeepEqual(v2.body, v1.body);
  // The old version's entry is still in KV, untouched: readers of v1 were never wrong.
  assert.ok(await kv.get(v1.key), 'the v1 entry is still in KV');
  const fromB = await edge(b, id);
  assert.equal(fromB.version, 2);
  assert.deepEqual(fromB.body, v2.body);
});

test('a course that does not exist is a 404 at the edge', async () => {
  const response = await a.fetch(`http://edge.test/courses/${enc('course-v1:No+Such+Course')}/outline.json`);
  assert.equal(response.status, 404);
  await response.text();
});

test('Python\'s stratacache reads the entry the worker wrote to KV, under the same key', async () => {
  const id = course(7);
  const key = `course_outline|v1|${id}|#1`;
  const text = await waitFor('the worker\'s KV entry', () => kv.get(key));
  const script = [
    'import base64, json, sys',
    'from stratacache import TieredCache',
    'from stratacache.keys import BuiltKey',
    'from stratacache.tiers import Tier',
    'class One(Tier):',
    '    kind = "memcached"',
    '    def __init__(self, items): self.items = items',
    '    def get_many(self, keys): return [self.items.get(k) for k in keys]',
    'key, b64, secret = sys.argv[1], sys.argv[2], sys.argv[3]',
    'cache = TieredCache([One({key: base64.b64decode(b64)})], local=None, codec="json", signing_keys=[("demo1", secret)])',
    'print(json.dumps(cache.get(BuiltKey(key), None)))',
  ].join('\n');
  const out = execFileSync(python, ['-c', script, key, text, SECRET], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const value = JSON.parse(out);
  assert.ok(value, 'Python found and verified the worker\'s envelope');
  assert.equal(value.course_id, id);
});

test('Django\'s tiers never failed during these tests', async () => {
  const { body } = await originCall('/_demo/counters');
  for (const [name, stats] of Object.entries(body.stratacache)) {
    for (const tier of stats.tiers) assert.equal(tier.errors, 0, `${name}/${tier.name}: ${JSON.stringify(tier)}\n${django.log().slice(-2000)}`);
  }
  assert.ok(!/stratacache: .* failed/.test(django.log()), django.log().slice(-2000));
});
