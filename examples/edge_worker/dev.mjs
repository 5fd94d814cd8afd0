// Runs the worker in workerd (Miniflare) on loopback, in front of a running
// Django example:
//   ORIGIN=http://127.0.0.1:8000 node dev.mjs      (PORT, default 8787)
// then open http://127.0.0.1:8787/courses/course-v1:BigU+Everything+2025/outline.json
import { Miniflare } from 'miniflare';
import { bundle } from './build.mjs';

const origin = process.env.ORIGIN ?? 'http://127.0.0.1:8000';
const port = Number(process.env.PORT ?? 8787);
const { root, modules } = await bundle();
const mf = new Miniflare({
  modules,
  modulesRoot: root,
  compatibilityDate: '2025-01-01',
  kvNamespaces: { CACHE: 'outline-cache' },
  bindings: {
    ORIGIN: origin,
    SIGNING_SECRET: process.env.DEMO_SIGNING_SECRET ?? 'outline demo: secret shared with the edge worker',
    EDGE_TOKEN: process.env.DEMO_EDGE_TOKEN ?? 'outline-demo-edge-token',
    VERSION_TTL_MS: process.env.VERSION_TTL_MS ?? '5000',
  },
  host: '127.0.0.1',
  port,
});
const url = await mf.ready;
console.log(`edge worker on ${url} (origin ${origin}); Ctrl-C stops it`);
const stop = async () => {
  await mf.dispose();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
