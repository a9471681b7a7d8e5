// A module both routes import: bundlers put it in a chunk of its own.
export function label(route, release) {
  return `${route}, release ${release}`;
}
