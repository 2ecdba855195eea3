/**
 * Did the run learn? Read off the training loss at the end of a run, so that a flat curve is
 * explained in words (a base model too small for the data, too little data or too few steps)
 * instead of leaving the user to guess from a chart.
 */

export interface LearningVerdict {
  learned: boolean;
  /** Mean training loss over the first and last tenth of the run. */
  firstLoss: number;
  lastLoss: number;
  /** The loss of a uniform guess over the vocabulary, ln V. */
  chanceLoss: number;
  message: string;
}

/** A run that cut its loss by less than this share did not learn. */
export const MIN_LOSS_DROP = 0.1;
/** Within this share of ln V, the loss is "near chance". */
const NEAR_CHANCE = 0.85;

/** `losses`: the training loss of every step of the run, in order (resumed segments included). */
export function learningVerdict(losses: number[], vocabSize: number): LearningVerdict | undefined {
  if (losses.length < 4) return undefined;
  const window = Math.min(20, Math.max(1, Math.round(losses.length / 10)));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const firstLoss = mean(losses.slice(0, window));
  const lastLoss = mean(losses.slice(-window));
  const chanceLoss = Math.log(vocabSize);
  const drop = (firstLoss - lastLoss) / firstLoss;
  const moved = `${firstLoss.toFixed(2)} → ${lastLoss.toFixed(2)}, ${drop >= 0 ? "−" : "+"}${Math.abs(100 * drop).toFixed(0)} %`;
  const advice = "Try more examples, more steps (the Standard preset) or a higher learning rate; if it stays flat, the base model is too small for this data.";
  if (drop >= MIN_LOSS_DROP) return { learned: true, firstLoss, lastLoss, chanceLoss, message: `The model learned: training loss ${moved}.` };
  if (lastLoss >= NEAR_CHANCE * chanceLoss)
    return {
      learned: false,
      firstLoss,
      lastLoss,
      chanceLoss,
      message: `The model did not learn this data: the training loss stayed near chance (${moved}; a uniform guess over ${vocabSize.toLocaleString("en-US")} tokens scores ${chanceLoss.toFixed(2)}). ${advice}`,
    };
  return { learned: false, firstLoss, lastLoss, chanceLoss, message: `The model barely learned: the training loss hardly moved (${moved}). ${advice}` };
}
