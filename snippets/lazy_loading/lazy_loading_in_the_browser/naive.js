// Two loaders that look right and are not.

// Shows every answer as it arrives: a late answer for an old query wins.
// --8<-- [start:naive]
export function showEveryAnswer(load, show) {
  return async (query) => {
    show(query, await load(query));
  };
}
// --8<-- [end:naive]

// Aborts the old load, but tells "superseded" from a failure by the error's
// name: abort(reason) rejects with the reason, which is not an AbortError.
// --8<-- [start:by-name]
export function abortAndCheckName(load, show, fail) {
  let controller = null;
  return async (query) => {
    controller?.abort(new Error("superseded"));
    controller = new AbortController();
    try {
      show(query, await load(query, controller.signal));
    } catch (error) {
      if (error.name !== "AbortError") {
        fail(query, error); // the superseded load lands here
      }
    }
  };
}
// --8<-- [end:by-name]
