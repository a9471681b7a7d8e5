// The resource-hints test bed's entry: the tests call window.bed.open() and
// window.bed.chart() and read which link tags the bundler's runtime added.
import { openHelp, openSettings } from "../../code_splitting/resource_hints/routes.js";

const view = document.getElementById("view");

async function open() {
  const route = await openSettings();
  route.render(view);
  return route;
}

async function chart() {
  const route = await open();
  const drawn = await route.loadChart();
  drawn.draw(view);
}

window.bed = { bundler: __BUNDLER__, open, chart, help: openHelp };
