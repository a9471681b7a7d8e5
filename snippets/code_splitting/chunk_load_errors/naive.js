// The handler many answers suggest: reload on every failed chunk. It recovers
// from one deploy, and reloads forever when the new release is broken too.
// Included by docs/code-splitting/chunk-load-errors.md; run in Chromium by
// tests/code_splitting/test_chunk_load_errors.py.

// --8<-- [start:naive]
export function installNaiveReload() {
  window.addEventListener("vite:preloadError", () => location.reload());
}

export async function loadRouteNaive(load) {
  try {
    return await load();
  } catch (error) {
    if (error.name === "ChunkLoadError") {
      location.reload();
    }
    throw error;
  }
}
// --8<-- [end:naive]
