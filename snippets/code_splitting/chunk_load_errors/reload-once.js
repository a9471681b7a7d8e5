// Reload once after a chunk of the old release failed to load, never in a loop.
// Included by docs/code-splitting/chunk-load-errors.md; built by Vite and
// webpack and run in Chromium by tests/code_splitting/test_chunk_load_errors.py.

// --8<-- [start:guard]
const RELOADED = "chunk-load-reloaded";

// Reload to fetch the new release's index.html, unless this tab already did
// for this failure: then the new release is broken too, and reloading again
// would loop. Returns whether the page is reloading.
export function reloadOnce() {
  if (sessionStorage.getItem(RELOADED) !== null) {
    return false;
  }
  sessionStorage.setItem(RELOADED, new Date().toISOString());
  location.reload();
  return true;
}

// Call when a lazy route rendered: the next deploy may reload once again.
export function routeLoaded() {
  sessionStorage.removeItem(RELOADED);
}
// --8<-- [end:guard]

// --8<-- [start:vite]
// Vite dispatches vite:preloadError when a dynamic import or its preloads fail.
export function installVitePreloadError() {
  window.addEventListener("vite:preloadError", (event) => {
    if (reloadOnce()) {
      event.preventDefault(); // the page is going away: don't reject import()
    }
  });
}
// --8<-- [end:vite]

// --8<-- [start:webpack]
// webpack rejects import() with a ChunkLoadError; it has no global event.
export async function loadRoute(load) {
  try {
    return await load();
  } catch (error) {
    if (error.name === "ChunkLoadError" && reloadOnce()) {
      return new Promise(() => {}); // the page is reloading: never settle
    }
    throw error;
  }
}
// --8<-- [end:webpack]
