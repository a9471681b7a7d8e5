// Latest-wins: a generation number decides what is shown; AbortController
// cancels the superseded load; signal.aborted, not the error's name, tells a
// superseded load from a failed one.
// --8<-- [start:latest]
export function latestWins(load, show, fail) {
  let generation = 0;
  let controller = null;
  return async (query) => {
    generation += 1;
    const mine = generation;
    controller?.abort(new Error("superseded"));
    controller = new AbortController();
    const { signal } = controller;
    try {
      const result = await load(query, signal);
      if (mine === generation) {
        show(query, result);
      }
    } catch (error) {
      if (signal.aborted || mine !== generation) {
        return; // superseded: nobody waits for this answer
      }
      fail(query, error);
    }
  };
}
// --8<-- [end:latest]
