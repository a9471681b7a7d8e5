// The lazily loaded route of the page's webpack app.
export const name = "route";
