/**
 * Lets pending events (a Ctrl-C handler, an abort message from the host) run. Loops over tensor
 * work must call it once per step: reads on the wasm backend resolve without ever giving the
 * event loop a turn, so an AbortSignal would otherwise never fire mid-run.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
