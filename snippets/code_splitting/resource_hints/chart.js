// The chart the settings route loads on demand; it records that it ran.
import { label } from "./shared.js";

(window.ran ??= []).push("chart.js");

export function draw(view) {
  view.append(` + ${label("chart")}`);
}
