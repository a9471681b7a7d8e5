// Cumulative layout shift of this page so far, from the browser's own
// layout-shift entries (shifts right after user input do not count).
// --8<-- [start:cls]
export function watchLayoutShift() {
  let total = 0;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if (!entry.hadRecentInput) {
        total += entry.value;
      }
    }
  }).observe({ type: "layout-shift", buffered: true });
  return () => total;
}
// --8<-- [end:cls]
