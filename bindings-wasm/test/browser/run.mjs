// Browser smoke test: serves the built package, the smoke page and the
// shared vectors on 127.0.0.1 (a free port), loads the page in headless
// Chromium (no network beyond loopback) and reads the result element from
// the dumped DOM. Exits 0 on PASS.
// Usage: node run.mjs <path to chromium>
import { createServer } from 'node:http';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
// The package as installed from its tarball (scripts/test-wasm.sh), else
// the build output.
const installed = path.resolve(here, '../node_modules/stratacache');
const roots = {
  '/pkg/': existsSync(path.join(installed, 'browser.js')) ? installed : path.resolve(here, '../../pkg'),
  '/vectors/': path.resolve(here, '../../../tests/vectors'),
  '/': here,
};
const types = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.json': 'application/json', '.wasm': 'application/wasm' };

const server = createServer(async (req, res) => {
  const url = new URL(req.url, 'http://localhost');
  const prefix = Object.keys(roots).find((p) => url.pathname.startsWith(p));
  const file = path.join(roots[prefix], path.normalize(url.pathname.slice(prefix.length)).replace(/^(\.\.[/\\])+/, ''));
  try {
    const body = await readFile(file);
    res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' });
    res.end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();

const profile = await mkdtemp(path.join(tmpdir(), 'stratacache-chromium-'));
const chromium = process.argv[2] ?? '/usr/bin/chromium';
const args = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage', `--user-data-dir=${profile}`,
  // Lets the page's promises settle before the DOM is dumped.
  '--virtual-time-budget=30000', '--dump-dom', `http://127.0.0.1:${port}/smoke.html`,
];
let dom = '';
let stderr = '';
const code = await new Promise((resolve) => {
  const child = spawn(chromium, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  child.stdout.on('data', (d) => (dom += d));
  child.stderr.on('data', (d) => (stderr += d));
  child.on('close', (c) => (clearTimeout(timer), resolve(c)));
});
server.close();
await rm(profile, { recursive: true, force: true });

const decode = (s) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&amp;/g, '&');
const log = decode(dom.match(/<pre id="log">([\s\S]*?)<\/pre>/)?.[1] ?? '');
const result = decode(dom.match(/<p id="result">([\s\S]*?)<\/p>/)?.[1] ?? '');
console.log(`chromium (exit ${code}), package from ${roots['/pkg/']}: ${result || '(no result element in the dumped DOM)'}`);
if (!result.startsWith('PASS')) {
  process.stdout.write(log);
  console.error(stderr.split('\n').slice(-20).join('\n'));
  process.exit(1);
}
console.log(`browser: ${result.split(' ')[1]} passed, 0 failed`);
