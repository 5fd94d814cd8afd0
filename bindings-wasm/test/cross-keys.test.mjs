// Cross-runtime keys: over 200 odd plain string keys (| # % !, spaces,
// Unicode, control characters, empty and near-empty, 10 KB) through a real
// memcached. A value the Python package stores under a plain string is read
// here under the same string, and the other way round; signing keys derived
// from one secret on both sides. Needs the Python package
// (STRATACACHE_PYTHON, default .venv/bin/python) and a memcached server
// (the first of STRATACACHE_MEMCACHED; scripts/test-wasm.sh starts one).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TieredCache, plainKey, signingKeysFromSecret } from 'stratacache';

const here = path.dirname(fileURLToPath(import.meta.url));
const python = process.env.STRATACACHE_PYTHON ?? path.join(here, '../../.venv/bin/python');
const script = path.join(here, 'cross/odd_keys.py');
const server = (process.env.STRATACACHE_MEMCACHED ?? '').split(',')[0];
const SECRET = `cross-keys secret ${process.pid}`;

/** A minimal memcached tier over the text protocol: one connection, one request at a time. */
function memcachedTier(address) {
  const [host, port] = address.split(':');
  const socket = net.connect(Number(port), host);
  let buffer = Buffer.alloc(0);
  let waiting = null;
  socket.on('data', (chunk) => {
    buffer = Buffer.concat([buffer, chunk]);
    waiting?.();
  });
  const ready = new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  // Resolves with the response once `done(buffer)` says it is complete.
  async function request(bytes, done) {
    await ready;
    return new Promise((resolve) => {
      waiting = () => {
        const end = done(buffer);
        if (end < 0) return;
        const response = buffer.subarray(0, end);
        buffer = buffer.subarray(end);
        waiting = null;
        resolve(response);
      };
      socket.write(bytes);
    });
  }
  const untilLine = (line) => (b) => {
    const at = b.indexOf(line);
    return at < 0 ? -1 : at + line.length;
  };
  return {
    name: 'memcached',
    kind: 'memcached',
    async getMany(keys) {
      const response = await request(`get ${keys.join(' ')}\r\n`, (b) => {
        // VALUE <key> <flags> <bytes>\r\n<data>\r\n ... END\r\n
        let at = 0;
        for (;;) {
          const eol = b.indexOf('\r\n', at);
          if (eol < 0) return -1;
          const line = b.toString('latin1', at, eol);
          if (line === 'END') return eol + 2;
          const size = Number(line.split(' ')[3]);
          at = eol + 2 + size + 2;
          if (at > b.length) return -1;
        }
      });
      const found = new Map();
      let at = 0;
      for (;;) {
        const eol = response.indexOf('\r\n', at);
        const line = response.toString('latin1', at, eol);
        if (line === 'END') break;
        const [, key, , size] = line.split(' ');
        found.set(key, new Uint8Array(response.subarray(eol + 2, eol + 2 + Number(size))));
        at = eol + 2 + Number(size) + 2;
      }
      return keys.map((k) => found.get(k) ?? null);
    },
    async setMany(entries) {
      for (const { key, value, ttlMs } of entries) {
        const exptime = ttlMs ? Math.ceil(ttlMs / 1000) : 0;
        const head = Buffer.from(`set ${key} 0 ${exptime} ${value.length}\r\n`, 'latin1');
        const reply = await request(Buffer.concat([head, Buffer.from(value), Buffer.from('\r\n')]), untilLine('\r\n'));
        assert.equal(reply.toString('latin1'), 'STORED\r\n', key);
      }
    },
    async deleteMany(keys) {
      for (const key of keys) await request(`delete ${key}\r\n`, untilLine('\r\n'));
    },
    close() {
      socket.destroy();
    },
  };
}

function py(command, keys) {
  return execFileSync(python, [script, command, server, SECRET], {
    input: JSON.stringify(keys),
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
}

function oddKeys() {
  const dir = mkdtempSync(path.join(tmpdir(), 'stratacache-cross-keys-'));
  try {
    const file = path.join(dir, 'keys.json');
    execFileSync(python, [script, 'keys', file], { stdio: ['ignore', 'inherit', 'inherit'] });
    return JSON.parse(readFileSync(file, 'utf8'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function jsCache(tier) {
  return new TieredCache({ tiers: [tier], local: false, signingKeys: signingKeysFromSecret(SECRET) });
}

test('odd plain keys: Python writes, JS reads under the same strings; JS writes, Python reads', async () => {
  assert.notEqual(server, '', 'STRATACACHE_MEMCACHED is not set: run through scripts/test-wasm.sh, which starts memcached');
  const keys = oddKeys();
  assert.ok(keys.length >= 200, `${keys.length} keys`);
  assert.equal(new Set(keys.map((k) => plainKey(k))).size, keys.length, 'no two keys share a remote key');
  assert.ok(keys.some((k) => k.length >= 10 * 1024) && keys.includes('') && keys.includes('a|b') && keys.includes('a%b'));
  const tier = memcachedTier(server);
  try {
    // Python -> JS
    const tag = `${Date.now()}`;
    py('write', keys);
    const got = await jsCache(tier).getMany(keys);
    const missed = got.map((r, i) => (r.hit && r.value === `py:${i}` ? null : [keys[i], r])).filter(Boolean);
    assert.deepEqual(missed, [], 'every value Python stored is read here under the same string');

    // JS -> Python (fresh values, over the ones Python wrote)
    const cache = jsCache(tier);
    for (let i = 0; i < keys.length; i++) await cache.setAllTiers(keys[i], `js:${tag}:${i}`, { ttlMs: 300_000 });
    const { values } = JSON.parse(py('read', keys));
    const wrong = values.map((v, i) => (v === `js:${tag}:${i}` ? null : [keys[i], v])).filter(Boolean);
    assert.deepEqual(wrong, [], 'every value JS stored is read by Python under the same string');
  } finally {
    tier.close();
  }
});
