// Nothing exported by accident (issue 17, item 8), checked on the package as
// installed from the `npm pack` tarball (scripts/test-wasm.sh puts it in
// test/node_modules/stratacache): each entry point exports at run time
// exactly the values its TypeScript declarations promise, the host entries
// (node, workerd, browser) all re-export the same public module, and the
// package's internal files cannot be imported.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const pkgDir = path.dirname(require.resolve('stratacache/package.json'));
const pkg = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));

/** The value names (class, function, const) a .d.ts file exports. */
function declaredValues(file) {
  const text = readFileSync(path.join(pkgDir, file), 'utf8');
  const names = [...text.matchAll(/^export (?:declare )?(?:class|function|const|let|enum) (\w+)/gm)].map((m) => m[1]);
  assert.ok(names.length > 0, `${file} declares no values`);
  return [...new Set(names)].sort();
}

const entries = [
  ['stratacache', pkg.exports['.'].types],
  ['stratacache/tools', pkg.exports['./tools'].types],
  ['stratacache/metrics', pkg.exports['./metrics'].types],
];

for (const [specifier, types] of entries) {
  test(`${specifier} exports exactly what ${types} declares`, async () => {
    const module = await import(specifier);
    const exported = Object.keys(module).filter((k) => k !== 'default').sort();
    assert.deepEqual(exported, declaredValues(types));
    assert.equal(module.default, undefined, `${specifier} has no default export`);
  });
}

test('every host entry (node, workerd, browser) exports the one public module', () => {
  for (const condition of ['node', 'workerd', 'browser']) {
    const file = pkg.exports['.'][condition];
    const text = readFileSync(path.join(pkgDir, file), 'utf8');
    const exports = text.split('\n').filter((line) => /^\s*export\b/.test(line));
    assert.deepEqual(exports, ["export * from './lib.js';"], `${file} (${condition})`);
  }
});

test("the package's internal files cannot be imported", async () => {
  const internal = ['lib.js', 'tiered.js', 'runtime.js', 'local.js', 'wire.js', 'stratacache_core.js', 'stratacache_core_bg.wasm'];
  for (const file of internal) {
    await assert.rejects(import(`stratacache/${file}`), { code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' }, file);
  }
  assert.deepEqual(Object.keys(pkg.exports).sort(), ['.', './metrics', './package.json', './tools']);
});
