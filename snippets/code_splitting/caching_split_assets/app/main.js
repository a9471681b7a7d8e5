// The caching page's app: an entry and two lazily loaded routes that share a
// module. The tests open a route through window.bed and read what it showed.
const view = document.getElementById("view");
const bed = { release: __RELEASE__, results: [] };
window.bed = bed;

const routes = {
  "#/report": () => import("./routes/report.js"),
  "#/settings": () => import("./routes/settings.js"),
};

bed.open = async (hash) => {
  try {
    const route = await routes[hash]();
    view.textContent = route.render();
    bed.results.push(`ok: ${view.textContent}`);
  } catch (error) {
    view.textContent = "This page could not be loaded.";
    bed.results.push(`${error.name}: ${error.message}`);
  }
  return bed.results.at(-1);
};
