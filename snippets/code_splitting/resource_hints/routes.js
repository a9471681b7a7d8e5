// The entry's lazy routes. The magic comment asks webpack to prefetch the
// settings chunk once the entry has loaded; Vite ignores it and, when import()
// runs, preloads the route's own static imports in parallel.
// --8<-- [start:prefetch]
export function openSettings() {
  return import(/* webpackPrefetch: true */ "./settings.js");
}
// --8<-- [end:prefetch]

export function openHelp() {
  return import("./help.js");
}
