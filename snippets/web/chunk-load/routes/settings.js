// A route that only some visitors open: the bundler puts it in a chunk of its
// own, loaded by import() on the first visit to #/settings.
export const release = __RELEASE__;

export function render(view) {
  view.textContent = `settings, release ${release}`;
}
