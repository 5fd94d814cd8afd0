// Reproduction (not a test): the edge example's worker, with NO KV fault,
// returns a few 502s ("stratacache: the loader failed: Network connection
// lost.") under steady load in front of the Django origin started as
// examples/edge_worker/origin.mjs starts it (gunicorn, keep-alive 2 s by
// default): workerd reuses a pooled connection gunicorn is closing, the
// origin tier's fetch and then the loader's fetch fail, and the worker
// answers 502. With gunicorn's keep-alive at 300 s there are none.
// Usage: node tests/reliability/edge/repro_keepalive.mjs        (default keep-alive)
//        KA=300 node tests/reliability/edge/repro_keepalive.mjs (GUNICORN_CMD_ARGS=--keep-alive 300)
// Seen on the 2-core machine at load average ~20: 17 errors in 358 requests vs 0 in 371.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startOrigin, startEdge, courseIds, warm, runTimeline, SECRET, TOKEN } from './harness.mjs';

const extra = process.env.KA ? { GUNICORN_CMD_ARGS: `--keep-alive ${process.env.KA}` } : {};
const origin = await startOrigin({ DEMO_COURSES: '200', DEMO_QUERY_DELAY_MS: '0', DEMO_SIGNING_SECRET: SECRET, DEMO_EDGE_TOKEN: TOKEN, ...extra });
const dir = mkdtempSync(path.join(tmpdir(), 'stratacache-edge-keepalive-'));
const names = ['warm', 'a', 'b', 'c', 'd', 'e', 'f'];
const edge = await startEdge({ origin: origin.url, names, dir });
const ids = courseIds(200);
try {
  await warm(edge.workers.warm, ids);
  // KV stays in pass mode all along.
  const run = await runTimeline(edge, [{ name: 'g', isolates: names.slice(1), concurrency: 16, ids, phases: [{ mode: 'pass', ms: 25_000 }] }]);
  const errors = run.requests.filter((r) => r.error);
  console.log(`gunicorn keep-alive ${process.env.KA ?? 'default (2 s)'}: ${errors.length} errors in ${run.requests.length} requests`);
  for (const e of errors.slice(0, 3)) console.log(`  ${e.status} ${e.error}`);
  process.exitCode = errors.length ? 1 : 0;
} finally {
  await edge.dispose();
  await origin.stop();
  rmSync(dir, { recursive: true, force: true });
}
