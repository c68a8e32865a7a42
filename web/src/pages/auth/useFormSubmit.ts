import { useRef, useState, type FormEvent } from "react";

/**
 * Submit handling shared by the visitor forms: runs `action` with the form's data, tracks that
 * it is pending and what it threw. A pending form ignores further submits; its button is only
 * aria-disabled, because disabling the focused button would drop the keyboard focus.
 */
export function useFormSubmit(action: (form: FormData) => Promise<void>) {
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const running = useRef(false);

  function onSubmit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    if (running.current) {
      return;
    }
    running.current = true;
    setPending(true);
    setError(null);
    action(new FormData(event.currentTarget))
      .catch((caught: unknown) => setError(caught))
      .finally(() => {
        running.current = false;
        setPending(false);
      });
  }

  return { pending, error, onSubmit };
}

/** A text field's value from submitted form data ("" when absent). */
export function formText(form: FormData, name: string): string {
  const value = form.get(name);
  return typeof value === "string" ? value : "";
}
