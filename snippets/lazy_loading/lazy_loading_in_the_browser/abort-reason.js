// What a fetch rejects with when its controller aborts, with and without a reason.
// --8<-- [start:reason]
export async function rejectionOf(reason) {
  const controller = new AbortController();
  const pending = fetch("/search?q=held", { signal: controller.signal });
  controller.abort(...(reason === undefined ? [] : [reason]));
  try {
    await pending;
    return "resolved";
  } catch (error) {
    return `${error.name}: ${error.message} (signal.aborted ${controller.signal.aborted})`;
  }
}
// --8<-- [end:reason]
