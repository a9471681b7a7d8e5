// A lazily loaded route of the page's plain-ES-module site.
export const name = "route";
