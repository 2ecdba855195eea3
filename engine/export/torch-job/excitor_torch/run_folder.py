"""The run folder, in the project's layout, so the Excitor extension opens a run trained here like a
local one: adapter_config.json + adapter_model.safetensors (the adapter), metrics.jsonl (the
training events), checkpoint/trainer_state.safetensors (the adapter, AdamW's moments, the step and
the run's fingerprint) and run.json (what the Runs view lists). Only rank 0 writes.
"""
import datetime
import json
import os
from typing import Dict, List, Optional

import torch

from . import st

METRICS = "metrics.jsonl"
STATE_FILE = os.path.join("checkpoint", "trainer_state.safetensors")
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
RUN_FILE = "run.json"


def write_text_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Events:
    """metrics.jsonl: one JSON event per line, each with its time, as the engine writes them."""

    def __init__(self, out_dir: str, echo: bool):
        self.file = os.path.join(out_dir, METRICS)
        self.echo = echo

    def emit(self, event: dict) -> None:
        line = json.dumps({"time": now(), **event}, separators=(",", ":"))
        with open(self.file, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        if self.echo:
            print(line, flush=True)

    def rewind(self, step: int) -> None:
        """Drops what happened after the checkpoint's step (the resumed run redoes it), and any line cut short by a kill."""
        if not os.path.exists(self.file):
            return
        kept = []
        with open(self.file, encoding="utf-8") as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if isinstance(e.get("step"), int) and e["step"] > step:
                    continue
                if e.get("type") == "start" and isinstance(e.get("resumedFromStep"), int) and e["resumedFromStep"] > step:
                    continue
                kept.append(line if line.endswith("\n") else line + "\n")
        write_text_atomic(self.file, "".join(kept))

    def step_losses(self) -> List[float]:
        with open(self.file, encoding="utf-8") as f:
            return [json.loads(l)["loss"] for l in f if '"type":"step"' in l]


def save_adapter(out_dir: str, tensors: Dict[str, torch.Tensor], config: dict, step: int) -> None:
    """adapter_model.safetensors (float32, metadata format pt and the step), then adapter_config.json."""
    st.save(os.path.join(out_dir, ADAPTER_WEIGHTS), {k: v.float() for k, v in tensors.items()}, {"format": "pt", "step": str(step)})
    write_text_atomic(os.path.join(out_dir, ADAPTER_CONFIG), json.dumps(config, indent=2) + "\n")


def save_state(out_dir: str, tensors: Dict[str, torch.Tensor], moments: Dict[str, tuple], step: int, fingerprint: str) -> None:
    """The engine's checkpoint layout: each tensor, then adamw.m.<name> and adamw.v.<name>."""
    os.makedirs(os.path.join(out_dir, "checkpoint"), exist_ok=True)
    out = {}
    for name, t in tensors.items():
        out[name] = t.float()
        if name in moments:
            out[f"adamw.m.{name}"], out[f"adamw.v.{name}"] = (m.float() for m in moments[name])
    st.save(os.path.join(out_dir, STATE_FILE), out, {"step": str(step), "optimizer_step": str(step), "fingerprint": fingerprint})


def read_state(out_dir: str, names: List[str], fingerprint: str, total_steps: int):
    """(step, tensors, moments) of the checkpoint, checked whole against this run; None when there is none."""
    path = os.path.join(out_dir, STATE_FILE)
    if not os.path.exists(path):
        return None
    meta = st.metadata(path)
    if meta.get("fingerprint") != fingerprint:
        raise SystemExit(f"{path}: the checkpoint was made by another job ({meta.get('fingerprint')}) than this one ({fingerprint}); train into a new --out folder")
    step = int(meta.get("step", "-1"))
    if not 0 <= step <= total_steps or meta.get("optimizer_step") != str(step):
        raise SystemExit(f"{path}: step {meta.get('step')!r} / optimizer_step {meta.get('optimizer_step')!r} is not a step of this run (0..{total_steps})")
    saved = st.load(path)
    missing = [n for n in names if n not in saved or (step > 0 and f"adamw.m.{n}" not in saved)]
    if missing:
        raise SystemExit(f"{path}: cannot resume from this checkpoint: tensor {missing[0]!r} or its AdamW moments are missing")
    moments = {n: (saved[f"adamw.m.{n}"], saved[f"adamw.v.{n}"]) for n in names if f"adamw.m.{n}" in saved}
    return step, {n: saved[n] for n in names}, moments


def write_run_record(out_dir: str, record: dict, status: str, error: Optional[str] = None) -> None:
    """run.json as the extension's Runs view reads it (name, spec, status, createdAt, error)."""
    rec = {**record, "status": status}
    if error:
        rec["error"] = {"message": error}
    write_text_atomic(os.path.join(out_dir, RUN_FILE), json.dumps(rec, indent=2) + "\n")
