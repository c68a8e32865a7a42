import { useEffect, useRef } from "react";
import { useLocation } from "react-router";

export const APP_NAME = "taskmesh";
/** How long to wait for a page's heading (pages may render it once their data arrives). */
const HEADING_WAIT_MS = 5_000;

/**
 * On every new page: name the document after the page's h1 and, unless this is the first page
 * of the visit, move focus to that h1, so keyboard and screen reader users start at the top
 * of what changed. Query-string changes (filters, paging) keep focus where it is.
 */
export function useRouteFocus(): void {
  const { pathname } = useLocation();
  const previous = useRef<string | null>(null);

  useEffect(() => {
    const moveFocus = previous.current !== null && previous.current !== pathname;
    previous.current = pathname;
    return whenHeadingShows((heading) => {
      document.title = `${heading.textContent?.trim() || APP_NAME} · ${APP_NAME}`;
      if (moveFocus) {
        heading.tabIndex = -1;
        heading.focus();
      }
    });
  }, [pathname]);
}

function whenHeadingShows(callback: (heading: HTMLElement) => void): () => void {
  const find = () => document.querySelector<HTMLElement>("main h1");
  const heading = find();
  if (heading !== null) {
    callback(heading);
    return () => undefined;
  }
  const observer = new MutationObserver(() => {
    const appeared = find();
    if (appeared !== null) {
      stop();
      callback(appeared);
    }
  });
  const timer = window.setTimeout(() => stop(), HEADING_WAIT_MS);
  function stop() {
    observer.disconnect();
    window.clearTimeout(timer);
  }
  observer.observe(document.body, { childList: true, subtree: true });
  return stop;
}
