// Builds one JavaScript plugin into a component for the `ignareo:task` world:
//   node scripts/componentize-js.mjs SOURCE.js OUT.wasm
// with componentize-js from target/js-tools (scripts/build-js-plugins installs it). The
// fetch-event handler is left out (a task exports `run`); the standard `fetch` stays, over
// WASI's HTTP, which the host sends under the plugin's manifest like `ignareo:task/http`.
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [source, out] = process.argv.slice(2);
if (!source || !out) {
  console.error('usage: node scripts/componentize-js.mjs SOURCE.js OUT.wasm');
  process.exit(2);
}
const tool = resolve('target/js-tools/node_modules/@bytecodealliance/componentize-js/src/componentize.js');
const { componentize } = await import(pathToFileURL(tool).href);
const { component } = await componentize({
  sourcePath: source,
  witPath: 'wit',
  worldName: 'task',
  disableFeatures: ['fetch-event'],
});
await writeFile(out, component);
