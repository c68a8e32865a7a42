/**
 * A fresh `Idempotency-Key` for one intended POST: should the request be sent twice (a
 * retry after a token refresh, a flaky network), the API performs it once.
 *
 * Built from `crypto.getRandomValues`, which, unlike `crypto.randomUUID`, also exists
 * outside secure contexts.
 */
export function newIdempotencyKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
