// The rows page: each section that scrolls into view loads its search results
// into one panel. ?loader=naive|by-name|latest|latest-unabortable picks the loader; the tests
// read window.shown (what the panel showed, in order) and window.failed.
import { abortAndCheckName, showEveryAnswer } from "./naive.js";
import { latestWins } from "./latest.js";
import { search } from "./search.js";
import { whenVisible } from "./visible.js";

const panel = document.getElementById("panel");
window.shown = [];
window.failed = [];

function show(query, words) {
  panel.textContent = `${query}: ${words.join(", ")}`;
  window.shown.push(query);
}

function fail(query, error) {
  panel.textContent = `${query}: ${error.name}: ${error.message}`;
  window.failed.push(`${query}: ${error.name}: ${error.message}`);
}

const loaders = {
  naive: () => showEveryAnswer(search, show),
  "by-name": () => abortAndCheckName(search, show, fail),
  latest: () => latestWins(search, show, fail),
  // A load that ignores the signal: only the generation check protects it.
  "latest-unabortable": () => latestWins((query) => search(query), show, fail),
};
const name = new URLSearchParams(location.search).get("loader") ?? "latest";
const request = loaders[name]();
whenVisible(document.querySelectorAll("section"), (row) => request(row.dataset.query));
window.ready = true;
