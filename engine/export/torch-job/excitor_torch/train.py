"""The training loop of an exported Excitor job, for `torchrun`: the project's recipe (AdamW with
no decay on the gates, linear warmup then cosine, global-norm clipping, gradient accumulation,
checkpoints, resume), data parallel with DDP, or FSDP (--fsdp) for bases too big for one GPU.

One optimizer step takes the step's global batch (the same examples in the same order as the
project's engine), splits it across the ranks, and each rank accumulates its share in
micro-batches. The loss is the mean over the whole batch's target tokens, so the adapter after a
step does not depend on the world size. A run started in a folder that holds this job's checkpoint
continues from it (torchrun --max-restarts restarts the workers after a failure).
"""
import argparse
import contextlib
import json
import math
import os
import signal
import sys
import time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from . import run_folder as rf
from . import st
from .data import epoch_order, make_batch, micro_batches, rank_share, read_examples, target_tokens
from .model import ExcitorLlama, ModelConfig
from .recipe import learning_rate, learning_verdict

JOB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m excitor_torch", description="Train the exported Excitor job (run it with torchrun; see README.md).")
    p.add_argument("--job", default=JOB_DIR, help="the exported job folder (default: the one holding this package)")
    p.add_argument("--out", help="run folder for the adapter, metrics.jsonl and checkpoints (default: JOB/run)")
    p.add_argument("--model", help="the base model's Hugging Face folder on this machine (default: the one exported from)")
    p.add_argument("--fsdp", action="store_true", help="shard the frozen base across the GPUs (FSDP); the Excitor tensors are their own unit, replicated")
    p.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default="auto", help="auto: bf16 autocast and a bf16 base on GPUs, float32 on CPUs")
    p.add_argument("--activation-checkpointing", action="store_true", help="recompute each layer in the backward pass (less memory, about a third more compute)")
    p.add_argument("--json", action="store_true", help="print each training event as one JSON line (rank 0)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with open(os.path.join(args.job, "job.json"), encoding="utf-8") as f:
        job = json.load(f)
    out = os.path.abspath(args.out or os.path.join(args.job, "run"))
    model_dir = args.model or job["baseModel"]

    cuda = torch.cuda.is_available()
    distributed = "WORLD_SIZE" in os.environ
    if distributed:
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if args.fsdp and not cuda:
        raise SystemExit("--fsdp shards the base across CUDA GPUs (NCCL); on CPUs use DDP, the default")
    if args.fsdp and tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2]) < (2, 1):
        # 2.0 keeps frozen units unsharded through the backward, and 1.x has no use_orig_params.
        raise SystemExit(f"--fsdp needs torch 2.1 or later (this is {torch.__version__}); use DDP, the default, or upgrade torch")
    bf16 = args.precision == "bfloat16" or (args.precision == "auto" and cuda)
    if rank == 0:
        os.makedirs(out, exist_ok=True)
    try:
        Trainer(job, args, out, model_dir, rank, world, device, bf16).run()
    except BaseException as e:
        if rank == 0 and not isinstance(e, KeyboardInterrupt) and os.path.isdir(out):
            rf.write_run_record(out, job["run"], "failed", str(e) or type(e).__name__)
        raise
    finally:
        if distributed:
            dist.destroy_process_group()


class Trainer:
    def __init__(self, job, args, out, model_dir, rank, world, device, bf16):
        self.job, self.args, self.out = job, args, out
        self.rank, self.world, self.device, self.bf16 = rank, world, device, bf16
        r = job["recipe"]
        self.total, self.per_epoch, self.batch, self.micro = r["totalSteps"], r["stepsPerEpoch"], r["batchSize"], r["microBatch"]
        self.train_set = read_examples(os.path.join(args.job, "data", "train.jsonl"))
        self.validation = read_examples(os.path.join(args.job, "data", "validation.jsonl"))
        self.config = ModelConfig.from_job(job["model"])
        a = job["adapter"]
        self.model = ExcitorLlama(self.config, a["layers"], a["num_prompts"], a["rank"], args.activation_checkpointing)
        self.events = rf.Events(out, echo=args.json and rank == 0)
        self.base_dtype = torch.bfloat16 if bf16 else torch.float32
        self.weights = st.TensorIndex.of_model(model_dir)

    # -- setup ----------------------------------------------------------------------------------

    def load_frozen(self, prefix: str, module: nn.Module) -> None:
        """Fills every not-yet-loaded (meta) parameter under `module` from the checkpoint, frozen."""
        for name, p in list(module.named_parameters()):
            if p.device.type != "meta":
                continue
            full = prefix + name
            if full not in self.weights.where:
                raise SystemExit(f"{self.weights_folder()}: tensor {full} is missing from the checkpoint")
            if self.weights.shape(full) != tuple(p.shape):
                raise SystemExit(f"{self.weights_folder()}: tensor {full} has shape {list(self.weights.shape(full))}, the config says {list(p.shape)}")
            owner, leaf = module, name
            if "." in name:
                path, leaf = name.rsplit(".", 1)
                owner = module.get_submodule(path)
            owner._parameters[leaf] = nn.Parameter(self.weights.get(full).to(self.base_dtype), requires_grad=False)

    def weights_folder(self):
        return self.args.model or self.job["baseModel"]

    def build(self):
        """The model on this rank's device, wrapped for data parallelism, and the Excitor tensors by adapter name."""
        init = st.load(os.path.join(self.args.job, "init", rf.ADAPTER_WEIGHTS))
        for name, p in self.model.excitor_parameters():
            with torch.no_grad():
                p.copy_(init[name])
        m = self.model
        if self.args.fsdp:
            net = self.wrap_fsdp()
        else:
            self.load_frozen("", m)
            m.to(self.device)
            net = m
            if self.world > 1:
                ids = [self.device.index] if self.device.type == "cuda" else None
                net = nn.parallel.DistributedDataParallel(m, device_ids=ids, broadcast_buffers=False)  # the only buffer, RoPE's table, is the same everywhere
        self.net = net
        self.params = dict(self.model.excitor_parameters())  # after wrapping: FSDP's use_orig_params views

    def wrap_fsdp(self):
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP, ShardingStrategy
        m, dev = self.model, self.device
        # Each layer is loaded then wrapped at once, so a rank holds one unsharded layer in host memory at a time.
        for i in m.adapted:  # the Excitor tensors: their own unit, not sharded (a few MB), full on every rank
            attn = m.model.layers[i].self_attn
            attn.excitor = FSDP(attn.excitor, sharding_strategy=ShardingStrategy.NO_SHARD, use_orig_params=True, device_id=dev)
        for j in range(len(m.model.layers)):
            self.load_frozen(f"model.layers.{j}.", m.model.layers[j])
            m.model.layers[j] = FSDP(m.model.layers[j], sharding_strategy=ShardingStrategy.FULL_SHARD, use_orig_params=True, device_id=dev)
        self.load_frozen("", m)  # embeddings, final norm, lm_head
        m.inv_freq = m.inv_freq.to(dev)
        return FSDP(m, sharding_strategy=ShardingStrategy.FULL_SHARD, use_orig_params=True, device_id=dev)

    def optimizer(self):
        r = self.job["recipe"]
        gates = [p for n, p in self.params.items() if n.endswith(".gate")]
        rest = [p for n, p in self.params.items() if not n.endswith(".gate")]
        groups = [{"params": rest, "weight_decay": r["weightDecay"]}, {"params": gates, "weight_decay": 0.0}]  # the spec: no decay on the gates
        return torch.optim.AdamW(groups, lr=r["learningRate"], betas=(0.9, 0.95), eps=1e-8, foreach=False)

    # -- the run --------------------------------------------------------------------------------

    def run(self):
        job, r = self.job, self.job["recipe"]
        self.build()
        opt = self.optimizer()
        step = 0
        saved = rf.read_state(self.out, list(self.params), job["fingerprint"], self.total)
        if saved is not None:
            step, values, moments = saved
            with torch.no_grad():
                for n, p in self.params.items():
                    p.copy_(values[n])
            for n, (m, v) in moments.items():
                p = self.params[n]
                opt.state[p] = {"step": torch.tensor(float(step)), "exp_avg": m.to(p.device), "exp_avg_sq": v.to(p.device)}
        if self.rank == 0:
            if saved is not None:
                self.events.rewind(step)
            elif os.path.exists(self.events.file):
                os.remove(self.events.file)
            rf.write_run_record(self.out, job["run"], "running")
            self.emit_start(step)
        self.barrier()

        validation_loss = self.validate(step) if step == 0 else None
        last_loss = float("nan")
        order, order_epoch = [], -1
        run_start, start_step, t0 = time.time(), step, time.time()
        fault = self.fault()
        while step < self.total:
            epoch = step // self.per_epoch
            if epoch != order_epoch:
                order, order_epoch = epoch_order(len(self.train_set), job["seed"], epoch), epoch
            idx = step % self.per_epoch
            batch = [self.train_set[i] for i in order[idx * self.batch:(idx + 1) * self.batch]]
            step_start = time.time()
            last_loss, grad_norm = self.step(batch, opt, step)
            step += 1
            if not math.isfinite(last_loss):
                raise SystemExit(f"training diverged at step {step} (loss {last_loss}); lower the learning rate")
            now = time.time()
            if self.rank == 0:
                self.events.emit({
                    "type": "step", "step": step, "totalSteps": self.total, "epoch": step / self.per_epoch,
                    "loss": last_loss, "learningRate": learning_rate(step, self.total, r["learningRate"], r["warmupSteps"]),
                    "gradNorm": grad_norm, "tokensPerSecond": sum(len(e.ids) - 1 for e in batch) / (now - step_start),
                    "elapsedSeconds": now - t0, "etaSeconds": (self.total - step) * (now - run_start) / (step - start_step),
                    "gates": [self.params[n].detach().float().cpu().tolist() for n in self.params if n.endswith(".gate")],
                })
            at_checkpoint = r["checkpointEvery"] > 0 and step % r["checkpointEvery"] == 0 and step < self.total
            evaluate = step % r["evalEvery"] == 0 if r["evalEvery"] > 0 else at_checkpoint
            if evaluate and step < self.total:
                validation_loss = self.validate(step)
            if at_checkpoint:
                self.checkpoint(step, opt)
            if fault is not None and fault == (self.rank, step):
                os.kill(os.getpid(), signal.SIGKILL)  # the resume test's failure: this rank dies at once, mid-run
        validation_loss = self.validate(step)
        self.checkpoint(step, opt)
        if self.rank == 0:
            done = {"type": "done", "step": step, "loss": last_loss, "elapsedSeconds": time.time() - t0, "adapterDir": self.out}
            if validation_loss is not None:
                done["validationLoss"] = validation_loss
            verdict = learning_verdict(self.events.step_losses(), self.config.vocab_size)
            if verdict:
                done["verdict"] = verdict
            self.events.emit(done)
            rf.write_run_record(self.out, job["run"], "done")
            print(f"excitor_torch: {step} steps done; the adapter is in {self.out}", file=sys.stderr, flush=True)

    def step(self, batch, opt, step):
        """One optimizer step on the global batch; returns (mean loss, gradient norm before clipping)."""
        r = self.job["recipe"]
        tokens = target_tokens(batch)
        share = rank_share(batch, self.rank, self.world)
        count = max(math.ceil(len(rank_share(batch, k, self.world)) / self.micro) for k in range(self.world))
        parts = micro_batches(share, self.micro, count, batch[0])
        loss_sum = torch.zeros((), dtype=torch.float64)
        for j, (examples, scale) in enumerate(parts):
            last = j == len(parts) - 1
            quiet = self.net.no_sync() if (not last and hasattr(self.net, "no_sync")) else contextlib.nullcontext()
            with quiet:
                s = self.loss_sum(examples) * scale
                # DDP and FSDP average gradients over the ranks; times the world size, they sum them.
                (s * self.world / tokens).backward()
            loss_sum += s.detach().double().cpu()
        loss_sum = self.all_sum(loss_sum)
        params = list(self.params.values())
        clip = r["gradClip"] if r["gradClip"] > 0 else float("inf")
        # Every trained tensor is whole on every rank (DDP, or FSDP's NO_SHARD Excitor units) with the
        # all-reduced gradient, so the local norm is the global one and every rank clips alike.
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
        lr = learning_rate(step + 1, self.total, r["learningRate"], r["warmupSteps"])
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss_sum) / tokens, float(norm)

    def loss_sum(self, examples):
        """Sum of the next-token cross-entropy over the examples' target tokens."""
        ids, targets, weights = make_batch(examples, self.job["padId"], self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.net(ids)  # [B, T, V]
        nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
        return (nll * weights.reshape(-1)).sum()

    @torch.no_grad()
    def validate(self, step):
        if not self.validation:
            return None
        share = rank_share(self.validation, self.rank, self.world)
        count = max(math.ceil(len(rank_share(self.validation, k, self.world)) / self.micro) for k in range(self.world))
        total = torch.zeros((), dtype=torch.float64)
        for examples, scale in micro_batches(share, self.micro, count, self.validation[0]):
            total += (self.loss_sum(examples) * scale).double().cpu()
        loss = float(self.all_sum(total)) / target_tokens(self.validation)
        if self.rank == 0:
            self.events.emit({"type": "validation", "step": step, "loss": loss})
        return loss

    def checkpoint(self, step, opt):
        if self.rank == 0:
            tensors = {n: p.detach() for n, p in self.params.items()}
            moments = {n: (opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"]) for n, p in self.params.items() if p in opt.state}
            rf.save_state(self.out, tensors, moments, step, self.job["fingerprint"])
            rf.save_adapter(self.out, tensors, self.job["adapter"]["config"], step)
            self.events.emit({"type": "checkpoint", "step": step, "dir": self.out})
        self.barrier()

    def emit_start(self, step):
        job, r = self.job, self.job["recipe"]
        kind = f"{self.device.type} {torch.cuda.get_device_name(self.device)}" if self.device.type == "cuda" else "cpu"
        backend = f"pytorch {torch.__version__} · {'FSDP' if self.args.fsdp else 'DDP'} × {self.world} · {kind} · {'bf16 autocast' if self.bf16 else 'float32'}"
        self.events.emit({
            "type": "start", "method": "excitor", "totalSteps": self.total, "stepsPerEpoch": self.per_epoch,
            "epochs": r["epochs"], "trainExamples": len(self.train_set), "validationExamples": len(self.validation),
            "truncatedExamples": job["truncatedExamples"], "trainableParams": sum(p.numel() for p in self.params.values()),
            "baseParams": job["baseParams"], "backend": backend,
            "backendNote": "the exported PyTorch job (torchrun); the forgetting monitor is not measured here",
            "layers": job["adapter"]["layers"], "learningRate": r["learningRate"], "effectiveBatch": self.batch,
            "resumedFromStep": step, "outDir": self.out,
        })
        if job["truncatedExamples"]:
            self.events.emit({"type": "log", "level": "warn", "message": job["truncatedNote"]})

    # -- collectives ----------------------------------------------------------------------------

    def all_sum(self, x: torch.Tensor) -> torch.Tensor:
        if self.world == 1:
            return x
        y = x.to(self.device)
        dist.all_reduce(y)
        return y.cpu()

    def barrier(self):
        if self.world > 1:
            # NCCL: name this rank's GPU, or the first collective may pick another one.
            dist.barrier(device_ids=[self.device.index]) if self.device.type == "cuda" else dist.barrier()

    def fault(self):
        """EXCITOR_TORCH_KILL_AT=RANK:STEP kills that rank right after that step, in the first attempt only (the resume test)."""
        spec = os.environ.get("EXCITOR_TORCH_KILL_AT")
        if not spec or os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0":
            return None
        rank, step = spec.split(":")
        return int(rank), int(step)
