// Retrying a failed dynamic import(): what not to cache, how long to wait,
// and when a fresh URL is needed. Used by the page's plain-ES-module site and
// by its webpack app.

// --8<-- [start:memo]
// The shape of React.lazy and of many hand-written loaders: the first call's
// promise is kept and handed to every later call, rejected or not.
export function lazyOnce(load) {
  let promise;
  return () => (promise ??= load());
}
// --8<-- [end:memo]

// --8<-- [start:transient]
// The errors a failed fetch of a chunk produces, as opposed to a bug in it:
// browsers reject import() with a TypeError (Chromium: "Failed to fetch
// dynamically imported module: <url>"), webpack with a ChunkLoadError.
export function isLoadFailure(error) {
  return error?.name === "ChunkLoadError" || error instanceof TypeError;
}
// --8<-- [end:transient]

// --8<-- [start:retry]
const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });

// Call load(attempt) until it resolves, at most `attempts` times, waiting
// baseDelayMs, 2x, 4x ... (capped, with jitter) between attempts. Only the
// errors `retryable` accepts are retried (load failures by default): an error
// thrown by the module's own code is not.
export async function retryImport(load, options = {}) {
  const {
    attempts = 4,
    baseDelayMs = 200,
    maxDelayMs = 5000,
    random = Math.random,
    onRetry = () => {},
    retryable = isLoadFailure,
    signal,
  } = options;
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await load(attempt);
    } catch (error) {
      if (attempt >= attempts || !retryable(error) || signal?.aborted) {
        throw error;
      }
      const backoff = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
      const delay = Math.round(backoff * (0.5 + random() / 2)); // equal jitter
      onRetry({ attempt, delay, error });
      await sleep(delay, signal);
    }
  }
}
// --8<-- [end:retry]

// --8<-- [start:evict]
// One load in flight for every caller, like lazyOnce, but a failure is not
// kept: the next call after a rejection starts over.
export function lazyRetrying(load, options) {
  let promise;
  return () => {
    promise ??= retryImport(load, options).catch((error) => {
      promise = undefined;
      throw error;
    });
    return promise;
  };
}
// --8<-- [end:evict]

// --8<-- [start:bust]
// A new URL for every retry: the module map holds a failed parse (and, in
// engines before the 2026 change, a failed fetch) for the page's lifetime.
export function retryUrl(url, attempt) {
  if (attempt === 1) {
    return url;
  }
  const fresh = new URL(url);
  fresh.searchParams.set("retry", String(attempt - 1));
  return fresh.href;
}
// --8<-- [end:bust]
