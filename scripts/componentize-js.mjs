// Builds one JavaScript plugin into a component for the `ignareo:task` world:
//   node scripts/componentize-js.mjs SOURCE.js OUT.wasm
// or, for an HTTP plugin (a fetch-event handler), for the world WORLD of the WIT in WIT_DIR:
//   node scripts/componentize-js.mjs SOURCE.js OUT.wasm WIT_DIR WORLD
// with componentize-js from target/js-tools (scripts/build-js-plugins installs it). The
// fetch-event handler is left out (a task exports `run`); the standard `fetch` stays, over
// WASI's HTTP, which the host sends under the plugin's manifest like `ignareo:task/http`.
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [source, out, witPath, worldName] = process.argv.slice(2);
if (!source || !out || (witPath && !worldName)) {
  console.error('usage: node scripts/componentize-js.mjs SOURCE.js OUT.wasm [WIT_DIR WORLD]');
  process.exit(2);
}
const tool = resolve('target/js-tools/node_modules/@bytecodealliance/componentize-js/src/componentize.js');
const { componentize } = await import(pathToFileURL(tool).href);
const options = witPath
  ? { sourcePath: source, witPath, worldName }
  : { sourcePath: source, witPath: 'wit', worldName: 'task', disableFeatures: ['fetch-event'] };
const { component } = await componentize(options);
await writeFile(out, component);
