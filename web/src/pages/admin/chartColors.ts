// Chart colours: SVG presentation attributes can't read the design system's CSS variables
// everywhere, so the few series colours live here. Each has at least 3:1 contrast against
// white, as WCAG 1.4.11 asks of graphical objects.
export const SERIES_COLOR = "#1d4ed8";
export const SECONDARY_COLOR = "#b45309";
export const GRID_COLOR = "#d1d5db";
