// The edge part of the demo (scripts/demo.sh runs it): the Django example as
// origin, this worker in workerd (two isolates sharing a KV namespace), and
// what each request was served from, before and after a publish in Django.
// Usage: node demo.mjs
import { Miniflare } from 'miniflare';
import { bundle, workerOptions } from './build.mjs';
import { startOrigin, sleep } from './origin.mjs';

const COURSE = 'course-v1:BigU+Everything+2025';
const VERSION_TTL_MS = 1000;
const SECRET = 'outline demo: secret shared with the edge worker';
const TOKEN = 'outline-demo-edge-token';

const origin = await startOrigin({ DEMO_SIGNING_SECRET: SECRET, DEMO_EDGE_TOKEN: TOKEN });
let mf;
try {
  const bundled = await bundle();
  const bindings = { ORIGIN: origin.url, SIGNING_SECRET: SECRET, EDGE_TOKEN: TOKEN, VERSION_TTL_MS: String(VERSION_TTL_MS) };
  mf = new Miniflare({ workers: ['a', 'b'].map((name) => workerOptions(name, bundled, bindings)), host: '127.0.0.1' });
  await mf.ready;
  const isolates = { a: await mf.getWorker('a'), b: await mf.getWorker('b') };

  const show = async (what, name) => {
    const t0 = performance.now();
    const response = await isolates[name].fetch(`http://edge.test/courses/${encodeURIComponent(COURSE)}/outline.json`);
    const body = await response.text();
    const ms = performance.now() - t0;
    if (response.status !== 200) throw new Error(`${what}: ${response.status} ${body.slice(0, 300)}`);
    const outline = JSON.parse(body);
    console.log(
      `  ${what.padEnd(44)} isolate ${name}: ${response.headers.get('x-stratacache-source').padEnd(7)} ` +
        `v${response.headers.get('x-course-version')}  ${(body.length / 1048576).toFixed(2)} MiB  ${ms.toFixed(1).padStart(6)} ms` +
        `  "${outline.sections[0].title}"`,
    );
  };

  console.log(`edge worker (workerd via Miniflare) -> KV -> Django origin at ${origin.url} (stratacache mode)`);
  const page = await fetch(`${origin.url}/courses/${encodeURIComponent(COURSE)}/`);
  await page.text();
  console.log(`  Django served the course page once: its outline is in Django's tiers under ${JSON.stringify(
    `course_outline|v1|${COURSE}|#1`)}`);
  await show('first request at the edge', 'a');
  await show('same isolate again', 'a');
  await sleep(200); // the KV back-fill runs after the response (waitUntil)
  await show('another isolate', 'b');
  const published = await (await fetch(`${origin.url}/courses/${encodeURIComponent(COURSE)}/publish`, { method: 'POST' })).json();
  console.log(`  POST /courses/.../publish in Django: version ${published.version} (nothing deleted anywhere)`);
  await show('right after the publish', 'a');
  await sleep(VERSION_TTL_MS + 100);
  await show(`after the version TTL (${VERSION_TTL_MS} ms)`, 'a');
  await sleep(200);
  await show('another isolate', 'b');
  console.log(
    '  sources: origin = the envelope Django wrote (same key, same bytes, copied into KV); local = this isolate;\n' +
      '  kv = Workers KV; loader = Django built it on the edge\'s request.',
  );
} finally {
  await mf?.dispose();
  await origin.stop();
}
