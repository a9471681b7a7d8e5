// Call onVisible(element) whenever one of the elements becomes mostly visible.
// --8<-- [start:visible]
export function whenVisible(elements, onVisible, { threshold = 0.6 } = {}) {
  const observer = new IntersectionObserver(
    (entries) => {
      for (const entry of entries) {
        if (entry.isIntersecting) {
          onVisible(entry.target);
        }
      }
    },
    { threshold },
  );
  for (const element of elements) {
    observer.observe(element);
  }
  return () => observer.disconnect();
}
// --8<-- [end:visible]
