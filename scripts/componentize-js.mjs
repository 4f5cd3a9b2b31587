// Builds one JavaScript plugin into a component:
//   node scripts/componentize-js.mjs SOURCE.js OUT.wasm [TOOLS_DIR [WIT_DIR [WORLD]]]
// with componentize-js from TOOLS_DIR (default target/js-tools, which scripts/build-js-plugins
// installs) for the world WORLD (default `task`) of the WIT package in WIT_DIR (default wit).
// `ignareo build` runs a copy of this script, embedded in the binary, naming its own tools and
// WIT. For the `task` world the fetch-event handler is left out (a task exports `run`); the
// standard `fetch` stays, over WASI's HTTP, which the host sends under the plugin's manifest
// like `ignareo:task/http`. Any other world is an HTTP plugin's (`wasi:http/proxy`): its
// fetch-event handler is the plugin.
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [source, out, tools = 'target/js-tools', wit = 'wit', world = 'task'] = process.argv.slice(2);
if (!source || !out) {
  console.error('usage: node scripts/componentize-js.mjs SOURCE.js OUT.wasm [TOOLS_DIR [WIT_DIR [WORLD]]]');
  process.exit(2);
}
const tool = resolve(tools, 'node_modules/@bytecodealliance/componentize-js/src/componentize.js');
const { componentize } = await import(pathToFileURL(tool).href);
const { component } = await componentize({
  sourcePath: source,
  witPath: wit,
  worldName: world,
  disableFeatures: world === 'task' ? ['fetch-event'] : [],
});
await writeFile(out, component);
