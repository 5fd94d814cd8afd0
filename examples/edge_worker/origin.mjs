// Starts the Django example (examples/django_outline) as the edge worker's
// origin: gunicorn on a free loopback port, DEMO_MODE=stratacache, a seeded
// modulestore in a temporary directory. Used by the tests and by demo.mjs.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '../..');
export const site = path.join(repo, 'examples/django_outline');
/** The Python with stratacache and the example's requirements (STRATACACHE_PYTHON, default .venv). */
export const python = process.env.STRATACACHE_PYTHON ?? path.join(repo, '.venv/bin/python');

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts the origin; `env` adds to the process environment (the STRATACACHE_*
 * variables choose real servers). Returns { url, dir, log(), stop() }.
 */
export async function startOrigin(env = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'stratacache-origin-'));
  const fullEnv = {
    ...process.env,
    DEMO_MODE: 'stratacache',
    DEMO_VAR: dir,
    DEMO_KEY_PREFIX: `edge-${process.pid}-${Date.now()}`,
    DJANGO_SETTINGS_MODULE: 'outline_site.settings',
    ...env,
  };
  execFileSync(python, ['manage.py', 'demo_setup'], { cwd: site, env: fullEnv, stdio: ['ignore', 'ignore', 'inherit'] });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    python,
    ['-m', 'gunicorn', 'outline_site.wsgi:application', '--worker-class', 'gthread', '--workers', '1',
      // Keep-alive longer than the worker keeps idle connections, so it
      // rarely sends a request on a socket gunicorn has just closed.
      '--threads', '8', '--keep-alive', '75', '--bind', `127.0.0.1:${port}`, '--log-level', 'warning'],
    { cwd: site, env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the Django origin exited at start:\n${output}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the Django origin did not answer within 60 s:\n${output}`);
    }
    await sleep(100);
  }
  return {
    url,
    dir,
    log: () => output,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((resolve) => {
          const timer = setTimeout(() => { child.kill('SIGKILL'); resolve(); }, 10_000);
          child.once('exit', () => { clearTimeout(timer); resolve(); });
        });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
