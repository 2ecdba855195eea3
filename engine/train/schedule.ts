/** Learning rate at optimizer step `step` (1-based): linear warmup, then cosine to 0. */
export function learningRate(step: number, totalSteps: number, peak: number, warmupSteps: number): number {
  if (warmupSteps > 0 && step <= warmupSteps) return (peak * step) / warmupSteps;
  const span = Math.max(1, totalSteps - warmupSteps);
  const progress = Math.min(1, (step - warmupSteps) / span);
  return peak * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/** The spec's default: 9e-3 × effective batch / 256. */
export function defaultLearningRate(effectiveBatch: number): number {
  return (9e-3 * effectiveBatch) / 256;
}

/** Warmup over the first 10 % of steps (at least one step when there is any). */
export function defaultWarmupSteps(totalSteps: number, share = 0.1): number {
  return totalSteps > 0 ? Math.max(1, Math.ceil(share * totalSteps)) : 0;
}
