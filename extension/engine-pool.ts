/**
 * The `excitor serve` processes the chat and the attention panel share, one per model + adapter,
 * so that asking for attention on a chat answer reuses the loaded model. At most `limit` stay
 * alive; the least recently used one is closed first.
 */
import type { Launcher } from "./engine-process";
import { ServeClient } from "./serve-client";

export class EnginePool {
  private readonly clients = new Map<string, ServeClient>();

  constructor(
    private readonly launcher: Launcher,
    private readonly backend: () => string,
    private readonly log: (line: string) => void,
    private readonly limit = 2,
  ) {}

  get(model: string, adapter: string | null): ServeClient {
    const key = `${model}\u0000${adapter ?? ""}`;
    let client = this.clients.get(key);
    if (client && !client.alive) {
      this.clients.delete(key);
      client = undefined;
    }
    if (client) {
      this.clients.delete(key); // re-insert: Map order is the recency order
    } else {
      client = new ServeClient(this.launcher, model, adapter, this.backend(), this.log);
    }
    this.clients.set(key, client);
    while (this.clients.size > this.limit) {
      const [oldKey, old] = this.clients.entries().next().value as [string, ServeClient];
      this.clients.delete(oldKey);
      old.dispose();
    }
    return client;
  }

  /** Closes every process (settings changed, or the extension is deactivating). */
  dispose(): void {
    for (const c of this.clients.values()) c.dispose();
    this.clients.clear();
  }
}
