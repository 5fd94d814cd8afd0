// Shortens the wasm module's import and export names (wasm-bindgen's are
// long and end in hashes that do not compress: about 0.6 KB of the gzipped
// module) and renames them to match in its JS glue.
// Usage: node minify-names.mjs <wasm-opt> <module_bg.wasm> <glue.js> [wasm-opt feature flags...]
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

const [wasmOpt, wasmPath, gluePath, ...features] = process.argv.slice(2);
const map = JSON.parse(
  execFileSync(wasmOpt, [wasmPath, ...features, '--minify-imports-and-exports-and-modules', '-o', wasmPath], { encoding: 'utf8', maxBuffer: 1 << 24 }),
);
const imports = new Map(map.imports.map(([, name, short]) => [name, short]));
const exports = new Map(map.exports);
const module = new Set(map.imports.map(([module]) => module));
const [moduleName] = module;
const shortModule = WebAssembly.Module.imports(new WebAssembly.Module(readFileSync(wasmPath)))[0]?.module;
let glue = readFileSync(gluePath, 'utf8');
const renamed = new Set();
const rename = (table) => (whole, before, name) => {
  const short = table.get(name);
  if (short === undefined) return whole;
  renamed.add(name);
  return before + short;
};
// Exports: every use is `wasm.<name>` (the glue's instance exports).
glue = glue.replace(/(\bwasm\.)([A-Za-z_$][\w$]*)/g, rename(exports));
// Imports: the keys of the import object (`<name>: function`).
glue = glue.replace(/^(\s+)(__wbg_[\w$]+|__wbindgen_[\w$]+)(?=: )/gm, rename(imports));
if (module.size !== 1 || !glue.includes(JSON.stringify(moduleName))) throw new Error(`minify-names: one import module expected, got ${[...module]}`);
glue = glue.replaceAll(JSON.stringify(moduleName), JSON.stringify(shortModule));
// Every import must have been renamed (an export the glue does not use keeps no name there).
const left = [...imports.keys()].filter((name) => !renamed.has(name));
if (left.length) throw new Error(`minify-names: imports not found in ${gluePath}: ${left.join(', ')}`);
writeFileSync(gluePath, glue);
