// The plain-ES-module site of the retry page: no bundler, so what happens is
// Chromium's module map alone. The tests call window.bed from Playwright.
import {
  isLoadFailure,
  lazyOnce,
  lazyRetrying,
  retryImport,
  retryUrl,
} from "../retry.js";

const describe = (error) => `${error.name}: ${error.message}`;

async function settle(promise) {
  try {
    const module = await promise;
    return `ok: ${module.name ?? "module"}`;
  } catch (error) {
    return describe(error);
  }
}

// Without jitter the waits are the same on every run: 200 ms, 400 ms ...
function options(extra, waits) {
  return {
    random: () => 1,
    onRetry: ({ delay }) => waits.push(delay),
    ...extra,
  };
}

window.bed = {
  importOnce: (url) => settle(import(url)),

  async memoised(url, calls) {
    const load = lazyOnce(() => import(url));
    const results = [];
    for (let call = 0; call < calls; call += 1) {
      results.push(await settle(load()));
    }
    return results;
  },

  async retry(url, { bust = false, ...extra } = {}) {
    const waits = [];
    let attempts = 0;
    const load = (attempt) => {
      attempts = attempt;
      return import(bust ? retryUrl(url, attempt) : url);
    };
    const started = performance.now();
    // With a fresh URL per attempt a failed parse is worth retrying too.
    const retryable = (error) => isLoadFailure(error) || error instanceof SyntaxError;
    const chosen = options(bust ? { retryable, ...extra } : extra, waits);
    const result = await settle(retryImport(load, chosen));
    return { result, attempts, waits, ms: performance.now() - started };
  },

  async retrying(url, calls, extra = {}) {
    const waits = [];
    const load = lazyRetrying(() => import(url), options(extra, waits));
    const results = [];
    for (let call = 0; call < calls; call += 1) {
      results.push(await settle(load()));
    }
    return { results, waits };
  },

  // The caller gives up (the user left the route) as the wait after
  // `retries` failed attempts begins: no timer, so the same on every run.
  async aborted(url, retries) {
    const controller = new AbortController();
    let failed = 0;
    const load = () => import(url);
    const extra = {
      signal: controller.signal,
      onRetry: () => (failed += 1) === retries && controller.abort(),
    };
    return settle(retryImport(load, { random: () => 1, ...extra }));
  },

  async duplicate(url) {
    const first = await import(url);
    const again = await import(url);
    const busted = await import(retryUrl(url, 2));
    return {
      sameAgain: first === again,
      sameBusted: first === busted,
      counts: [first.bump(), again.bump(), busted.bump()],
    };
  },
};
