"""The project's training recipe (engine/train/schedule.ts, verdict.ts): linear warmup then cosine
to 0, and the end-of-run verdict on whether the loss fell."""
import math
from typing import List, Optional


def learning_rate(step: int, total_steps: int, peak: float, warmup_steps: int) -> float:
    """Learning rate at optimizer step `step` (1-based)."""
    if warmup_steps > 0 and step <= warmup_steps:
        return peak * step / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


MIN_LOSS_DROP = 0.1
NEAR_CHANCE = 0.85


def learning_verdict(losses: List[float], vocab_size: int) -> Optional[dict]:
    if len(losses) < 4:
        return None
    window = min(20, max(1, math.floor(len(losses) / 10 + 0.5)))  # JavaScript's Math.round
    first = sum(losses[:window]) / window
    last = sum(losses[-window:]) / window
    chance = math.log(vocab_size)
    drop = (first - last) / first
    moved = f"{first:.2f} → {last:.2f}, {'−' if drop >= 0 else '+'}{abs(100 * drop):.0f} %"
    advice = "Try more examples, more steps (the Standard preset) or a higher learning rate; if it stays flat, the base model is too small for this data."
    v = {"firstLoss": first, "lastLoss": last, "chanceLoss": chance}
    if drop >= MIN_LOSS_DROP:
        return {"learned": True, **v, "message": f"The model learned: training loss {moved}."}
    if last >= NEAR_CHANCE * chance:
        return {"learned": False, **v, "message": f"The model did not learn this data: the training loss stayed near chance ({moved}; a uniform guess over {vocab_size:,} tokens scores {chance:.2f}). {advice}"}
    return {"learned": False, **v, "message": f"The model barely learned: the training loss hardly moved ({moved}). {advice}"}
