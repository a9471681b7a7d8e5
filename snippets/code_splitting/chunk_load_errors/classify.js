// Tell a deleted chunk from a network failure before deciding to reload.
// Included by docs/code-splitting/chunk-load-errors.md; run in Chromium by
// tests/code_splitting/test_chunk_load_errors.py.
import { reloadOnce } from "./reload-once.js";

// --8<-- [start:status]
// The URL of the chunk that failed: webpack's ChunkLoadError carries it in
// `request`; Chromium ends its dynamic-import TypeError with it.
export function chunkUrl(error) {
  return error?.request ?? error?.message?.match(/https?:\/\/\S+$/)?.[0];
}

// Ask the server about the chunk itself, bypassing every cache.
export async function chunkStatus(url) {
  let response;
  try {
    response = await fetch(url, { method: "HEAD", cache: "no-store" });
  } catch {
    return "unreachable"; // offline, reset, DNS: the network, not the deploy
  }
  const type = response.headers.get("content-type") ?? "";
  if (response.status === 404 || response.status === 410) {
    return "deleted";
  }
  if (response.ok && !type.includes("javascript")) {
    return "deleted"; // an SPA fallback answered with index.html
  }
  return response.ok ? "present" : "unreachable"; // 5xx: try again later
}
// --8<-- [end:status]

// --8<-- [start:recover]
// Retry a chunk that is still there; reload once for one that a deploy
// deleted; give up on an unreachable server without reloading into an error.
export async function recoverOrReload(load, { retries = 2 } = {}) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await load();
    } catch (error) {
      const url = chunkUrl(error);
      if (url === undefined) {
        throw error; // not a failed chunk: a bug in the route itself
      }
      const status = await chunkStatus(url);
      if (status === "present" && attempt <= retries) {
        continue;
      }
      if (status === "deleted" && reloadOnce()) {
        return new Promise(() => {}); // the page is reloading: never settle
      }
      throw error;
    }
  }
}
// --8<-- [end:recover]
