// A module several lazy parts import statically: it gets a chunk of its own.
export function label(name) {
  return `${name}, built by ${__BUNDLER__}`;
}
