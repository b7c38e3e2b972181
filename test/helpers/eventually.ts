/** Retries `check` every `stepMs` until it passes, or rethrows its error once `timeoutMs` passed. */
export async function eventually(
  check: () => void | Promise<void>,
  timeoutMs = 5_000,
  stepMs = 10,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, stepMs));
    }
  }
}
