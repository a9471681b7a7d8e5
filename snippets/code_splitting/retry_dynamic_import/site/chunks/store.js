// A module with state: each module instance has its own counter.
let count = 0;

export function bump() {
  count += 1;
  return count;
}
