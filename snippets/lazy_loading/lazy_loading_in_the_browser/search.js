// The load: GET /search?q=<query> on this page's origin, cancellable by signal.
// --8<-- [start:search]
export async function search(query, signal) {
  const response = await fetch(`/search?q=${encodeURIComponent(query)}`, { signal });
  if (!response.ok) {
    throw new Error(`search failed: HTTP ${response.status}`);
  }
  return response.json();
}
// --8<-- [end:search]
