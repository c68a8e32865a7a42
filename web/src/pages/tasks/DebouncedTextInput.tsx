import { useEffect, useId, useState, type KeyboardEvent } from "react";

const COMMIT_DELAY_MS = 300;

interface DebouncedTextInputProps {
  label: string;
  /** The committed value (what the URL holds), in its normal form. */
  value: string;
  /** The normal form of what is typed: two texts with one normal form are the same filter. */
  normalize: (text: string) => string;
  /** Called with the normalised text once typing pauses, or at once on Enter. */
  onCommit: (value: string) => void;
  type?: "search" | "text";
  hint?: string;
  placeholder?: string;
}

/**
 * A text input that commits what is typed after a pause, so typing does not fire a request
 * (or a history entry) per key, and that follows the committed value when it changes from
 * elsewhere (back button, "Clear filters").
 */
export function DebouncedTextInput({
  label,
  value,
  normalize,
  onCommit,
  type = "text",
  hint,
  placeholder,
}: DebouncedTextInputProps) {
  const id = useId();
  const hintId = `${id}-hint`;
  const [text, setText] = useState(value);
  const [seenValue, setSeenValue] = useState(value);
  if (value !== seenValue) {
    setSeenValue(value);
    // Keep what is being typed ("foo " becomes "foo" once committed, but the space stays).
    if (normalize(text) !== value) {
      setText(value);
    }
  }

  const pending = normalize(text) !== value;
  useEffect(() => {
    if (!pending) {
      return undefined;
    }
    const timer = setTimeout(() => onCommit(normalize(text)), COMMIT_DELAY_MS);
    return () => clearTimeout(timer);
  }, [pending, text, normalize, onCommit]);

  function commitOnEnter(event: KeyboardEvent<HTMLInputElement>) {
    if (event.key === "Enter") {
      event.preventDefault();
      if (pending) {
        onCommit(normalize(text));
      }
    }
  }

  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      {hint !== undefined && (
        <p id={hintId} className="field-hint">
          {hint}
        </p>
      )}
      <input
        id={id}
        type={type}
        value={text}
        placeholder={placeholder}
        aria-describedby={hint === undefined ? undefined : hintId}
        onChange={(event) => setText(event.target.value)}
        onKeyDown={commitOnEnter}
      />
    </div>
  );
}
