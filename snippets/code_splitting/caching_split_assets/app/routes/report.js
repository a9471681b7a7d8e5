// A lazily loaded route; it shares formatting with the settings route.
import { label } from "../shared/format.js";

export function render() {
  return label("report", __RELEASE__);
}
