// A second lazy route that imports shared.js, so bundlers split shared.js out.
import { label } from "./shared.js";

export function render(view) {
  view.textContent = label("help");
}
