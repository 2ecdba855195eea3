"""The PyTorch peer of `npm run bench`: the same Excitor model, training step and generation
as the project's engines, written as plain eager PyTorch the way a researcher would.

Frozen LLaMA weights (random, float32, requires_grad False), Excitor tensors on the adapted
layers (../shared/docs/excitor-method.md), one training step = forward, masked
cross-entropy, backward, AdamW; generation = greedy decoding with a KV cache holding K' per
query head. Prints one JSON line: tokens/s of each timed run and the peak resident memory.

Usage: python3 bench/peer_torch.py '<json spec>' (see bench/spec.ts for the fields), or
python3 bench/peer_torch.py --gemm '[[M, K, N], ...]' for F.linear's GFLOP/s per shape.
"""
import json
import math
import resource
import sys
import time

import torch
import torch.nn.functional as F


def rope_tables(d, theta, start, count):
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    pos = torch.arange(start, start + count, dtype=torch.float64)
    ang = torch.outer(pos, inv)
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos().float(), ang.sin().float()  # [T, d]


def rope(x, cos, sin):  # x [B, H, T, d]
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Model:
    def __init__(self, s):
        torch.manual_seed(0)
        self.s = s
        C, I, V = s["hidden"], s["intermediate"], s["vocab"]
        H, Hkv = s["heads"], s["kvHeads"]
        d = C // H
        self.H, self.Hkv, self.d = H, Hkv, d
        w = lambda *shape: torch.randn(*shape) * s["scale"]
        self.embed = w(V, C)
        self.lm_head = w(V, C)
        self.norm = torch.ones(C)
        self.layers = []
        for _ in range(s["layers"]):
            self.layers.append(dict(
                attn_norm=torch.ones(C), mlp_norm=torch.ones(C),
                q=w(H * d, C), k=w(Hkv * d, C), v=w(Hkv * d, C), o=w(C, H * d),
                gate=w(I, C), up=w(I, C), down=w(C, I)))
        self.excitor = {}
        for i in s["adapted"]:
            self.excitor[i] = dict(
                prompts=torch.randn(s["numPrompts"], H * d).requires_grad_(),
                down=(torch.randn(s["rank"], C) / math.sqrt(C)).requires_grad_(),
                up=(torch.randn(H * d, s["rank"]) / math.sqrt(s["rank"])).requires_grad_(),
                gate=torch.full((H,), 0.1).requires_grad_())

    def params(self):
        return [p for ex in self.excitor.values() for p in ex.values()]

    def rms(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    def forward(self, ids, cache=None):  # ids [B, T]
        B, T = ids.shape
        H, Hkv, d = self.H, self.Hkv, self.d
        past = cache[0][0].shape[2] if cache and cache[0] is not None else 0
        cos, sin = rope_tables(d, 10000.0, past, T)
        mask = torch.full((T, past + T), float("-inf")).triu(past + 1)
        x = F.embedding(ids, self.embed)  # [B, T, C]
        for i, L in enumerate(self.layers):
            h = self.rms(x, L["attn_norm"])
            q = F.linear(h, L["q"]).view(B, T, H, d).transpose(1, 2)  # [B, H, T, d]
            k = F.linear(h, L["k"]).view(B, T, Hkv, d).repeat_interleave(H // Hkv, dim=2)  # [B, T, H, d]
            v = F.linear(h, L["v"]).view(B, T, Hkv, d).repeat_interleave(H // Hkv, dim=2).transpose(1, 2)
            ex = self.excitor.get(i)
            if ex is not None:
                qe = F.linear(F.linear(h, ex["down"]), ex["up"])  # [B, T, Cq]
                a = torch.softmax(qe @ ex["prompts"].t() / math.sqrt(H * d), dim=-1)  # [B, T, K]
                e = (a @ ex["prompts"]).view(B, T, H, d)
                k = k + ex["gate"].view(1, 1, H, 1) * e  # K' = Kb + g E
            k = rope(k.transpose(1, 2), cos, sin)
            q = rope(q, cos, sin)
            if cache is not None:
                if cache[i] is not None:
                    k = torch.cat([cache[i][0], k], dim=2)
                    v = torch.cat([cache[i][1], v], dim=2)
                cache[i] = (k, v)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + mask, dim=-1)
            o = (att @ v).transpose(1, 2).reshape(B, T, H * d)
            x = x + F.linear(o, L["o"])
            h2 = self.rms(x, L["mlp_norm"])
            x = x + F.linear(F.silu(F.linear(h2, L["gate"])) * F.linear(h2, L["up"]), L["down"])
        return F.linear(self.rms(x, self.norm), self.lm_head)  # [B, T, V]


def gemm_rates(shapes):
    """GFLOP/s of F.linear (x [M, K] times W [N, K] transposed) per shape, medians of 7."""
    out = []
    for M, K, N in shapes:
        x, w = torch.randn(M, K), torch.randn(N, K)
        for _ in range(3):
            F.linear(x, w)
        ts = []
        for _ in range(7):
            t0 = time.perf_counter()
            F.linear(x, w)
            ts.append(time.perf_counter() - t0)
        out.append(2 * M * K * N / sorted(ts)[3] / 1e9)
    return out


def main():
    if sys.argv[1] == "--gemm":
        torch.set_num_threads(1)  # as in main(): OpenBLAS carries the threads
        print(json.dumps(gemm_rates(json.loads(sys.argv[2]))))
        return
    s = json.loads(sys.argv[1])
    # OpenBLAS (OPENBLAS_NUM_THREADS, set by bench/run.ts) carries the matmuls on every thread;
    # torch's own OpenMP pool on top of it oversubscribes the cores (steps swing 1.5k-3.2k tok/s
    # on 2 cores), so it gets one thread: the fastest setting measured (bench/README.md).
    torch.set_num_threads(1)
    m = Model(s)
    g = torch.Generator().manual_seed(1)
    B, T, V = s["batch"], s["seq"], s["vocab"]
    ids = torch.randint(3, V, (B, T), generator=g)
    targets = torch.randint(3, V, (B, T), generator=g)
    weights = (torch.arange(T) >= 16).float().expand(B, T)
    opt = torch.optim.AdamW(m.params(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.02)

    def step():
        logits = m.forward(ids)
        nll = F.cross_entropy(logits.view(-1, V), targets.view(-1), reduction="none")
        loss = (nll * weights.reshape(-1)).sum() / weights.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    train = []
    if s["trainSteps"] > 0:
        step()  # warm-up
        for _ in range(s["trainSteps"]):
            t0 = time.perf_counter()
            step()
            train.append(B * T / (time.perf_counter() - t0))

    gen = []
    with torch.no_grad():
        prompt = ids[:1, : s["genPrompt"]]
        for run in range(s["genRuns"] + 1):
            cache = [None] * len(m.layers)
            logits = m.forward(prompt, cache)
            t0 = time.perf_counter()
            for _ in range(s["genTokens"]):
                nxt = logits[:, -1].argmax(-1, keepdim=True)
                logits = m.forward(nxt, cache)
            if run > 0:  # the first run warms up
                gen.append(s["genTokens"] / (time.perf_counter() - t0))

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    print(json.dumps({"backend": f"pytorch-{torch.__version__}", "train": train, "gen": gen, "peakRssBytes": peak}))


if __name__ == "__main__":
    main()
