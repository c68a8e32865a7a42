import { useEffect, useId, useRef, useState, type ReactNode } from "react";

interface ConfirmButtonProps {
  /** The button's content, e.g. "Delete task". */
  label: ReactNode;
  /** What is about to happen, asked before it does. */
  question: string;
  /** The confirming button's text, e.g. "Yes, delete task". */
  confirmLabel: string;
  pending?: boolean;
  onConfirm: () => void;
}

/**
 * A destructive button that asks first, in the page rather than with `window.confirm`
 * (which cannot be styled, and which some browsers suppress). Focus moves to the question's
 * buttons when it opens and back to the button when it is cancelled.
 */
export function ConfirmButton({ label, question, confirmLabel, pending, onConfirm }: ConfirmButtonProps) {
  const questionId = useId();
  const [asking, setAsking] = useState(false);
  const [returnFocus, setReturnFocus] = useState(false);
  const cancelRef = useRef<HTMLButtonElement>(null);
  const openRef = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    if (asking) {
      cancelRef.current?.focus();
    } else if (returnFocus) {
      openRef.current?.focus();
    }
  }, [asking, returnFocus]);

  if (!asking) {
    return (
      <button
        ref={openRef}
        type="button"
        className="btn btn-danger"
        onClick={() => {
          setAsking(true);
          setReturnFocus(true);
        }}
      >
        {label}
      </button>
    );
  }
  return (
    <div className="confirm" role="group" aria-labelledby={questionId}>
      <p id={questionId}>{question}</p>
      <div className="confirm-actions">
        <button type="button" className="btn btn-danger" disabled={pending} onClick={onConfirm}>
          {confirmLabel}
        </button>
        <button ref={cancelRef} type="button" className="btn" onClick={() => setAsking(false)}>
          Cancel
        </button>
      </div>
    </div>
  );
}
