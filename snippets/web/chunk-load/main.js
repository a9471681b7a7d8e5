// The test bed's entry: a hash router with one lazily loaded route. The query
// string picks which handler of the page is installed (?fix=none|naive|reload|classify),
// so one build serves every case; the tests read window.bed.
import {
  installVitePreloadError,
  loadRoute,
  routeLoaded,
} from "../../code_splitting/chunk_load_errors/reload-once.js";
import { recoverOrReload } from "../../code_splitting/chunk_load_errors/classify.js";
import {
  installNaiveReload,
  loadRouteNaive,
} from "../../code_splitting/chunk_load_errors/naive.js";

const fix = new URLSearchParams(location.search).get("fix") ?? "none";
const view = document.getElementById("view");
const bed = { bundler: __BUNDLER__, release: __RELEASE__, fix, results: [] };
window.bed = bed;

function loadSettings() {
  return import("./routes/settings.js");
}

const loaders = {
  none: loadSettings,
  naive: () => loadRouteNaive(loadSettings),
  reload: () => loadRoute(loadSettings),
  classify: () => recoverOrReload(loadSettings),
};

if (__BUNDLER__ === "vite" && fix === "reload") {
  installVitePreloadError();
}
if (__BUNDLER__ === "vite" && fix === "naive") {
  installNaiveReload();
}

async function show() {
  if (location.hash !== "#/settings") {
    return;
  }
  try {
    const route = await loaders[fix]();
    if (route === undefined) {
      return; // vite:preloadError was prevented: the page is reloading
    }
    route.render(view);
    routeLoaded();
    bed.results.push(`ok: release ${route.release}`);
  } catch (error) {
    view.textContent = "This page could not be loaded.";
    bed.results.push(`${error.name}: ${error.message}`);
  }
}

window.addEventListener("hashchange", show);
bed.ready = show();
