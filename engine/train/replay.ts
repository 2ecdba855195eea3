/**
 * `--retain-weight λ`: a regulariser against forgetting. Every optimizer step also trains on one
 * batch of the replay set (base-model samples, see retention.ts) towards the base model's own
 * next-token distributions: the loss λ · mean over its tokens of CE(p_base, p_tuned), which is
 * λ · KL(base ‖ tuned) up to a constant, so its gradient pulls the tuned model back to the base
 * on text the base knows. Its gradients are added to the step's before clipping.
 */
import type { LossAndGrads, ModelRuntime, TrainBatch } from "../runtime";
import { retentionBatches, type RetentionSample } from "./retention";

/** Token positions per replay pass: about one micro-batch of training text. */
const REPLAY_ROWS = 1024;
/** Soft targets are kept between steps when they take at most this many floats (64 MB). */
const CACHE_FLOATS = 16 * 1024 * 1024;

export class ReplayRegulariser {
  private readonly batches: TrainBatch[];
  private readonly cache = new Map<number, Float32Array>();
  private readonly keep: boolean;

  constructor(
    private readonly rt: ModelRuntime,
    samples: readonly RetentionSample[],
    padId: number,
    readonly weight: number,
  ) {
    this.batches = retentionBatches(samples, padId, REPLAY_ROWS);
    this.keep = this.batches.reduce((n, b) => n + b.batch * b.seqLen, 0) * rt.config.vocabSize <= CACHE_FLOATS;
  }

  /** The gradients of step `step`'s replay term (which batch is a function of the step, so a resume replays the same). */
  async lossAndGrads(step: number): Promise<LossAndGrads> {
    const i = step % this.batches.length;
    const b = this.batches[i];
    let soft = this.cache.get(i);
    if (!soft) {
      soft = await this.rt.logprobRows(b.ids, b.batch, b.seqLen, false); // [B·T, V] log p_base
      for (let k = 0; k < soft.length; k++) soft[k] = Math.exp(soft[k]);
      if (this.keep) this.cache.set(i, soft);
    }
    let tokens = 0;
    for (const w of b.weights) tokens += w;
    return this.rt.lossAndGrads({ ...b, soft }, this.weight / tokens);
  }
}
