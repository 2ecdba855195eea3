/**
 * The host's end of an `excitor serve` process (cli/serve-protocol.ts): one per model + adapter,
 * started on first use. Requests get ids; events are routed back to the request that caused them.
 * If the process dies, every pending request fails with its last error line.
 */
import type { ChildProcess } from "node:child_process";
import type { AttentionRequest, GenerateRequest, ServeEvent, ServeRequest } from "../cli/serve-protocol";
import { eachLine, type Launcher } from "./engine-process";

type Ready = Extract<ServeEvent, { type: "ready" }>;
type Done = Extract<ServeEvent, { type: "done" }>;
type AttentionResult = Extract<ServeEvent, { type: "attention" }>;

/** A model folder or adapter the engine rejected; `file`/`line` say where when it knows. */
export class EngineStartError extends Error {
  constructor(
    message: string,
    readonly file?: string,
    readonly line?: number,
  ) {
    super(message);
  }
}

interface Pending {
  onText?: (text: string) => void;
  resolve: (e: ServeEvent) => void;
  reject: (e: Error) => void;
}

export class ServeClient {
  readonly ready: Promise<Ready>;
  private readonly child: ChildProcess;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private exited = false;
  private lastStderr = "";

  constructor(
    launcher: Launcher,
    readonly model: string,
    readonly adapter: string | null,
    backend: string,
    private readonly log: (line: string) => void,
  ) {
    const args = ["--backend", backend, "serve", "--model", model, ...(adapter ? ["--adapter", adapter] : [])];
    log(`[serve] excitor ${args.join(" ")}`);
    this.child = launcher.cli(args);
    let resolveReady!: (r: Ready) => void;
    let rejectReady!: (e: Error) => void;
    this.ready = new Promise<Ready>((res, rej) => ((resolveReady = res), (rejectReady = rej)));
    this.ready.catch(() => {}); // callers that never await it must not see an unhandled rejection
    eachLine(this.child.stdout!, (line) => {
      let e: ServeEvent;
      try {
        e = JSON.parse(line) as ServeEvent;
      } catch {
        log(`[serve] ${line}`);
        return;
      }
      if (e.type === "ready") resolveReady(e);
      else if (e.type === "fatal") rejectReady(new EngineStartError(e.message, e.file, e.line));
      else this.route(e);
    });
    eachLine(this.child.stderr!, (line) => {
      this.lastStderr = line;
      log(`[serve] ${line}`);
    });
    const onExit = (why: string) => {
      if (this.exited) return;
      this.exited = true;
      const err = new Error(this.lastStderr.replace(/^excitor: (internal )?error: /, "") || `the engine process ended (${why})`);
      rejectReady(err);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    this.child.on("error", (e) => onExit(e.message));
    this.child.on("close", (code, signal) => onExit(signal ?? `code ${code}`));
  }

  get alive(): boolean {
    return !this.exited;
  }

  /** Starts a generation; `onText` gets each streamed piece. Returns the request id (for stop) and the end. */
  generate(req: Omit<GenerateRequest, "id" | "op">, onText: (text: string) => void): { id: number; done: Promise<Done> } {
    const id = this.nextId++;
    const done = this.request<Done>({ ...req, id, op: "generate" }, onText);
    return { id, done };
  }

  /** Ends generation `id` in the engine at its next token; its `done` then says "aborted". */
  stop(id: number): void {
    this.sendLine({ id: this.nextId++, op: "stop", target: id });
  }

  attention(req: Omit<AttentionRequest, "id" | "op">): Promise<AttentionResult> {
    const id = this.nextId++;
    return this.request<AttentionResult>({ ...req, id, op: "attention" });
  }

  dispose(): void {
    if (this.exited) return;
    this.child.stdin?.end(); // end of input: the engine finishes and exits
    setTimeout(() => this.exited || this.child.kill(), 2000).unref();
  }

  private request<T extends ServeEvent>(req: GenerateRequest | AttentionRequest, onText?: (t: string) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.exited) return reject(new Error("the engine process has ended"));
      this.pending.set(req.id, { onText, resolve: resolve as (e: ServeEvent) => void, reject });
      this.sendLine(req);
    });
  }

  private sendLine(req: ServeRequest): void {
    if (!this.exited) this.child.stdin?.write(JSON.stringify(req) + "\n");
  }

  private route(e: Exclude<ServeEvent, { type: "ready" | "fatal" }>): void {
    // An error without an id answers a line the engine could not attribute (never one this client sends).
    if (e.id === undefined) {
      if (e.type === "error") this.log(`[serve] ${e.message}`);
      return;
    }
    const p = this.pending.get(e.id);
    if (!p) return;
    if (e.type === "text") return p.onText?.(e.text);
    this.pending.delete(e.id);
    if (e.type === "error") p.reject(new Error(e.message));
    else p.resolve(e);
  }
}
