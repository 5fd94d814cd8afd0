// The instantiated wasm module, set once by the entry point (workerd.js,
// node.js or browser.js) before any other module code runs.
let exports = null;

export function attach(wasmExports) {
  exports = wasmExports;
}

export function wasmMemory() {
  if (exports === null) throw new Error('stratacache: the wasm module is not initialized; import "stratacache" (not its internal files)');
  return exports.memory;
}
