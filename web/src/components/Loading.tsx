export interface LoadingProps {
  /** What is loading, read by screen readers and shown beside the spinner. */
  label?: string;
}

export function Loading({ label = "Loading…" }: LoadingProps) {
  return (
    <div className="loading" role="status">
      <span className="spinner" aria-hidden="true" />
      <span>{label}</span>
    </div>
  );
}
