// A lazily loaded route; it shares formatting with the report route.
import { label } from "../shared/format.js";

export function render() {
  return label("settings", __RELEASE__);
}
