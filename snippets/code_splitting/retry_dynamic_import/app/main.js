// The page's webpack app: one lazily loaded route, loaded by the tests through
// window.bed, with no retry or with the page's retry (webpack's chunk loading
// is a <script> element, not the module map).
import { retryImport } from "../retry.js";

const describe = (error) => `${error.name}: ${error.message.split("\n")[0]}`;

async function settle(promise) {
  try {
    return `ok: ${(await promise).name}`;
  } catch (error) {
    return describe(error);
  }
}

// --8<-- [start:webpack]
const loadRoute = () => import("./route.js");
// --8<-- [end:webpack]

window.bed = {
  bundler: __BUNDLER__,
  importOnce: () => settle(loadRoute()),
  async retry() {
    const waits = [];
    const options = { random: () => 1, onRetry: ({ delay }) => waits.push(delay) };
    const result = await settle(retryImport(loadRoute, options));
    return { result, waits };
  },
};
