// Prefetch for the next page without competing with this page's own requests:
// add the hint only after the load event, when the page's resources are in.
// --8<-- [start:after-load]
export function prefetchAfterLoad(href) {
  const add = () => {
    const link = document.createElement("link");
    link.rel = "prefetch";
    link.href = href;
    document.head.append(link);
  };
  if (document.readyState === "complete") {
    add();
  } else {
    window.addEventListener("load", add, { once: true });
  }
}
// --8<-- [end:after-load]
