import { useId, type ComponentProps } from "react";

export type TextFieldProps = Omit<ComponentProps<"input">, "id" | "name"> & {
  label: string;
  name: string;
  /** A message under the field that marks it invalid. */
  error?: string | null;
  /** Guidance under the label, e.g. a password's rules. */
  hint?: string;
};

/** A labelled input with its hint and error, both announced with the field. */
export function TextField({ label, name, type = "text", error, hint, className, ...inputProps }: TextFieldProps) {
  const id = useId();
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const describedBy = [hint ? hintId : null, error ? errorId : null].filter(Boolean).join(" ");
  return (
    <div className={className ? `field ${className}` : "field"}>
      <label htmlFor={id}>{label}</label>
      {hint ? (
        <p id={hintId} className="field-hint">
          {hint}
        </p>
      ) : null}
      <input
        {...inputProps}
        id={id}
        name={name}
        type={type}
        aria-invalid={error ? true : undefined}
        aria-describedby={describedBy || undefined}
      />
      {error ? (
        <p id={errorId} className="field-error">
          {error}
        </p>
      ) : null}
    </div>
  );
}
