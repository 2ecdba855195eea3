/** The webview's link to the host: typed postMessage out, typed messages in, and saved state. */
interface VsCodeApi<S> {
  postMessage(message: unknown): void;
  getState(): S | undefined;
  setState(state: S): void;
}

declare function acquireVsCodeApi<S>(): VsCodeApi<S>;

export function connect<ToHost, ToWebview, S = unknown>(onMessage: (m: ToWebview) => void): { post(m: ToHost): void; getState(): S | undefined; setState(s: S): void } {
  const api = acquireVsCodeApi<S>();
  window.addEventListener("message", (e: MessageEvent) => onMessage(e.data as ToWebview));
  return { post: (m) => api.postMessage(m), getState: () => api.getState(), setState: (s) => api.setState(s) };
}
