// The lazily loaded route. Its chart is loaded on demand too; the magic comment
// asks webpack to preload the chart's chunk while this chunk loads.
import { label } from "./shared.js";

export function render(view) {
  view.textContent = label("settings");
}

// --8<-- [start:preload]
export function loadChart() {
  return import(/* webpackPreload: true */ "./chart.js");
}
// --8<-- [end:preload]
