// The npm package as a Workers developer gets it: the tarball (`npm pack`,
// path in STRATACACHE_TARBALL) installed into an empty folder with no Rust
// on PATH, the README's edge-worker quick start (extracted from README.md,
// between `<!-- quickstart:edge-worker -->` and the next code block's end)
// as src/worker.js, served by `wrangler dev --local` (its bundler and its
// workerd, the secret from .dev.vars, KV simulated locally; requested over
// HTTP like the README's curl; no login, no metrics, no network needed),
// and bundled two ways and run in workerd (Miniflare):
//   - wrangler's own bundler, `wrangler deploy --dry-run --outdir`, no flags;
//   - esbuild with the flags the README gives (workerd condition, .wasm copied);
// and esbuild's browser defaults (`--bundle --format=esm`), which must fail
// with the package's one clear message, not a bare "Invalid URL string".
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../..');
const bin = path.join(repo, 'bindings-wasm/node_modules/.bin');
const tarball = process.env.STRATACACHE_TARBALL;
const SECRET = 'a quick-start secret of at least 16 bytes';
const COURSE = 'course-v1:edX+DemoX+Demo_Course';
let dir;

/** The first ```js block after `marker` in README.md. */
export function quickstart(readme, marker) {
  const at = readme.indexOf(marker);
  assert.ok(at >= 0, `README.md has no ${marker}`);
  const block = readme.slice(at).match(/```js\n([\s\S]*?)```/);
  assert.ok(block, `no js block after ${marker}`);
  return block[1];
}

// PATH without the Rust toolchain: the package must not need it.
const noRustPath = process.env.PATH.split(':')
  .filter((d) => !['cargo', 'rustc', 'wasm-bindgen'].some((t) => { try { readFileSync(path.join(d, t)); return true; } catch { return false; } }))
  .join(':');
const run = (cmd, args, opts = {}) =>
  execFileSync(cmd, args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts,
    env: { ...process.env, PATH: noRustPath, WRANGLER_SEND_METRICS: 'false', CI: '1', ...opts.env } });

before(() => {
  assert.ok(tarball, 'STRATACACHE_TARBALL (the npm pack tarball) must be set: run bash scripts/test-wasm.sh');
  dir = mkdtempSync(path.join(tmpdir(), 'stratacache-pkg-'));
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'quickstart', private: true, type: 'module' }));
  run('npm', ['install', '--no-audit', '--no-fund', '--offline', '--loglevel=error', tarball]);
  mkdirSync(path.join(dir, 'src'));
  writeFileSync(path.join(dir, 'src/worker.js'), quickstart(readFileSync(path.join(repo, 'README.md'), 'utf8'), '<!-- quickstart:edge-worker -->'));
  writeFileSync(path.join(dir, 'wrangler.toml'), [
    'name = "quickstart"', 'main = "src/worker.js"', 'compatibility_date = "2025-01-01"',
    '[[kv_namespaces]]', 'binding = "CACHE"', 'id = "00000000000000000000000000000000"', ''].join('\n'));
  // What `wrangler dev` reads secrets from (the README says so).
  writeFileSync(path.join(dir, '.dev.vars'), `CACHE_SECRET="${SECRET}"\n`);
});

after(() => dir && rmSync(dir, { recursive: true, force: true }));

/** Runs the bundle in `outdir` in workerd; returns two responses for one course. */
async function serve(outdir, log = []) {
  const main = readdirSync(outdir).find((f) => f.endsWith('.js'));
  const mf = new Miniflare({
    modules: true,
    modulesRoot: outdir,
    scriptPath: path.join(outdir, main),
    // workerd's own output (a start-up error lands there).
    handleRuntimeStdio(stdout, stderr) {
      stdout.on('data', (d) => log.push(String(d)));
      stderr.on('data', (d) => log.push(String(d)));
    },
    modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'] }],
    compatibilityDate: '2025-01-01',
    kvNamespaces: ['CACHE'],
    bindings: { CACHE_SECRET: SECRET },
  });
  try {
    const url = `http://localhost/outline/${encodeURIComponent(COURSE)}`;
    const first = await (await mf.dispatchFetch(url)).json();
    const second = await (await mf.dispatchFetch(url)).json();
    return { first, second };
  } finally {
    await mf.dispose();
  }
}

function assertQuickstart({ first, second }) {
  // The key is the one Django's Key("course_outline", 3)(course_id) writes: the `+` kept.
  assert.equal(first.key, `course_outline|v3|${COURSE}`);
  assert.equal(first.value.course, COURSE);
  // The second request is answered from the cache: the same value, not reloaded.
  assert.deepEqual(second.value, first.value);
}

/** A free loopback port (bound, then closed). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    }).on('error', reject);
  });
}

test('`wrangler dev --local` serves the quick start over HTTP as the README shows', async () => {
  const [port, inspector] = [await freePort(), await freePort()];
  const child = spawn(path.join(bin, 'wrangler'),
    ['dev', '--local', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspector)],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
      env: { ...process.env, PATH: noRustPath, WRANGLER_SEND_METRICS: 'false', CI: '1', HOME: dir } });
  let log = '';
  const ready = new Promise((resolve, reject) => {
    const onData = (d) => { log += d; if (/Ready on http/.test(log)) resolve(); };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error(`wrangler dev exited (${code}):\n${log}`)));
    setTimeout(() => reject(new Error(`wrangler dev not ready after 60 s:\n${log}`)), 60_000).unref();
  });
  try {
    await ready;
    // The README's `curl localhost:8787/outline/course-v1%3AedX%2BDemoX%2BDemo_Course`.
    const url = `http://127.0.0.1:${port}/outline/${encodeURIComponent(COURSE)}`;
    const first = await (await fetch(url)).json();
    const second = await (await fetch(url)).json();
    assertQuickstart({ first, second });
  } finally {
    // wrangler runs workerd as a child: end the whole process group.
    try { process.kill(-child.pid, 'SIGTERM'); } catch { /* already gone */ }
    await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)));
  }
});

test("wrangler's bundler (wrangler deploy --dry-run) picks a working entry", async () => {
  run(path.join(bin, 'wrangler'), ['deploy', '--dry-run', '--outdir', 'dist-wrangler']);
  const out = path.join(dir, 'dist-wrangler');
  assert.ok(readdirSync(out).some((f) => f.endsWith('.wasm')), 'wrangler kept the wasm as its own module');
  assertQuickstart(await serve(out));
});

test('esbuild with the flags the README gives runs in workerd', async () => {
  // The README's command, as written there (only the output folder renamed).
  const readme = readFileSync(path.join(repo, 'README.md'), 'utf8');
  const command = readme.match(/`esbuild (src\/worker\.js [^`]*)`/);
  assert.ok(command, 'README.md gives no `esbuild src/worker.js ...` command');
  const args = command[1].split(/\s+/).map((a) => (a === '--outdir=dist' ? '--outdir=dist-esbuild' : a));
  assert.ok(args.includes('--outdir=dist-esbuild'), command[1]);
  run(path.join(bin, 'esbuild'), [...args, '--log-level=error']);
  assertQuickstart(await serve(path.join(dir, 'dist-esbuild')));
});

test("esbuild's browser defaults fail in workerd with the package's own message", async () => {
  run(path.join(bin, 'esbuild'), ['src/worker.js', '--bundle', '--format=esm', '--outdir=dist-default', '--log-level=error']);
  const log = [];
  await assert.rejects(serve(path.join(dir, 'dist-default'), log));
  assert.match(log.join(''), /stratacache: this bundle picked the package's browser entry/);
});
