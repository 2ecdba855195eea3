"""LLaMA + Excitor in plain PyTorch: the model the project's engine trains, read top to bottom.

Follows docs/excitor-method.md of the Excitor project number for number. The frozen base is a
Hugging Face LLaMA-family checkpoint (LLaMA, Mistral, Qwen2: RMSNorm, rotate-half RoPE, SwiGLU,
grouped-query attention); in each adapted layer an Excitor bypass rebuilds the keys from
learnable prompts, K' = Kb + g * E, so only the attention scores change. Module and parameter
names are Hugging Face's, so `model.layers.3.self_attn.excitor.gate` is saved as
`base_model.model.model.layers.3.self_attn.excitor.gate`, the adapter format's name.

The configuration is the one the engine parsed from config.json (job.json "model"), and the
RoPE inverse frequencies are the engine's own (float64), scaling included: one parser, one table.
"""
import math
from dataclasses import dataclass
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

ADAPTER_PREFIX = "base_model.model."


@dataclass
class ModelConfig:
    """The engine's ModelConfig (engine/model/config.ts), as exported in job.json."""

    hidden_size: int  # C
    intermediate_size: int
    num_layers: int  # N
    num_heads: int  # H
    num_kv_heads: int  # Hkv
    head_dim: int  # d
    vocab_size: int
    rms_norm_eps: float
    rope_inv_freq: List[float]  # [d/2], theta^(-2i/d) with the checkpoint's rope scaling applied
    tie_word_embeddings: bool
    qkv_bias: bool
    o_bias: bool
    sliding_window: Optional[int]

    @staticmethod
    def from_job(m: dict) -> "ModelConfig":
        return ModelConfig(
            hidden_size=m["hiddenSize"], intermediate_size=m["intermediateSize"], num_layers=m["numLayers"],
            num_heads=m["numHeads"], num_kv_heads=m["numKvHeads"], head_dim=m["headDim"], vocab_size=m["vocabSize"],
            rms_norm_eps=m["rmsNormEps"], rope_inv_freq=m["ropeInverseFrequencies"],
            tie_word_embeddings=m["tieWordEmbeddings"], qkv_bias=m["qkvBias"], o_bias=m["oBias"],
            sliding_window=m.get("slidingWindow"))


# ---------------------------------------------------------------------------------------------
# Excitor: the trainable bypass of one adapted attention layer (the spec's four tensors)
# ---------------------------------------------------------------------------------------------

class Excitor(nn.Module):
    def __init__(self, c: ModelConfig, num_prompts: int, rank: int):
        super().__init__()
        cq = c.num_heads * c.head_dim
        self.heads, self.head_dim = c.num_heads, c.head_dim
        self.prompts = nn.Parameter(torch.zeros(num_prompts, cq))  # P [K, Cq]
        self.down = nn.Linear(c.hidden_size, rank, bias=False)  # Wdown [r, C]
        self.up = nn.Linear(rank, cq, bias=False)  # Wup [Cq, r]
        self.gate = nn.Parameter(torch.zeros(c.num_heads))  # g [H], zero: the tuned model starts as the base

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, T, C] -> g * E [B, T, H, d]
        B, T, _ = x.shape
        qe = self.up(self.down(x))  # QE [B, T, Cq]
        a = torch.softmax(qe @ self.prompts.t() / math.sqrt(self.prompts.shape[1]), dim=-1)  # A [B, T, K]
        e = (a @ self.prompts).view(B, T, self.heads, self.head_dim)  # E [B, T, H, d]
        return self.gate.view(1, 1, -1, 1) * e


# ---------------------------------------------------------------------------------------------
# The frozen LLaMA
# ---------------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x):  # [..., C]
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return (h * self.weight.float()).to(x.dtype)


def rotate_half(x):  # [..., d]
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class Attention(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        H, Hkv, d, C = c.num_heads, c.num_kv_heads, c.head_dim, c.hidden_size
        self.H, self.Hkv, self.d = H, Hkv, d
        self.q_proj = nn.Linear(C, H * d, bias=c.qkv_bias)
        self.k_proj = nn.Linear(C, Hkv * d, bias=c.qkv_bias)
        self.v_proj = nn.Linear(C, Hkv * d, bias=c.qkv_bias)
        self.o_proj = nn.Linear(H * d, C, bias=c.o_bias)
        self.excitor: Optional[Excitor] = None

    def forward(self, x, cos, sin, mask):  # x [B, T, C] (after input_layernorm); cos, sin [T, d]; mask [T, T]
        B, T, _ = x.shape
        H, Hkv, d = self.H, self.Hkv, self.d
        q = self.q_proj(x).view(B, T, H, d)  # Q [B, T, H, d]
        k = self.k_proj(x).view(B, T, Hkv, d).repeat_interleave(H // Hkv, dim=2)  # Kb per query head [B, T, H, d]
        v = self.v_proj(x).view(B, T, Hkv, d).repeat_interleave(H // Hkv, dim=2)  # V [B, T, H, d]
        if self.excitor is not None:
            k = k + self.excitor(x)  # K'_h = Kb_kv(h) + g_h E_h
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H, T, d]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        s = (q @ k.transpose(-1, -2)).float() / math.sqrt(d) + mask  # S [B, H, T, T]
        p = torch.softmax(s, dim=-1).to(v.dtype)
        o = (p @ v).transpose(1, 2).reshape(B, T, H * d)  # [B, T, Cq]
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x):  # [B, T, C]
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = MLP(c)

    def forward(self, x, cos, sin, mask):  # [B, T, C]
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList([DecoderLayer(c) for _ in range(c.num_layers)])
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class ExcitorLlama(nn.Module):
    """LlamaForCausalLM with Excitor bypasses in `layers`; everything but the bypasses is frozen."""

    def __init__(self, c: ModelConfig, layers: List[int], num_prompts: int, rank: int, checkpoint_layers: bool = False):
        super().__init__()
        self.config = c
        with meta_parameters():  # the frozen weights come from the checkpoint (load_base): none are made here
            self.model = Backbone(c)
            self.lm_head = None if c.tie_word_embeddings else nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        for i in layers:
            self.model.layers[i].self_attn.excitor = Excitor(c, num_prompts, rank)
        self.adapted = list(layers)
        self.checkpoint_layers = checkpoint_layers
        self.register_buffer("inv_freq", torch.tensor(c.rope_inv_freq, dtype=torch.float64), persistent=False)

    def excitor_parameters(self):
        """(adapter tensor name, parameter) of every trainable tensor, in the adapter file's order."""
        for i in self.adapted:
            ex = self.model.layers[i].self_attn.excitor
            base = f"{ADAPTER_PREFIX}model.layers.{i}.self_attn.excitor."
            for part, p in (("prompts", ex.prompts), ("down.weight", ex.down.weight), ("up.weight", ex.up.weight), ("gate", ex.gate)):
                yield base + part, p

    def rope(self, T: int, device):  # cos, sin [T, d], the half repeated, computed in float64 as the engine does
        ang = torch.outer(torch.arange(T, dtype=torch.float64, device=device), self.inv_freq.to(device))
        ang = torch.cat([ang, ang], dim=-1)
        return ang.cos().float(), ang.sin().float()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # ids [B, T] -> logits [B, T, V] (float32)
        T = ids.shape[1]
        cos, sin = self.rope(T, ids.device)
        pos = torch.arange(T, device=ids.device)
        allowed = pos[None, :] <= pos[:, None]  # causal [T, T]
        w = self.config.sliding_window
        if w is not None:
            allowed &= pos[None, :] > pos[:, None] - w
        mask = torch.zeros(T, T, device=ids.device).masked_fill(~allowed, float("-inf"))
        x = self.model.embed_tokens(ids)  # [B, T, C]
        for layer in self.model.layers:
            if self.checkpoint_layers and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(layer, x, cos, sin, mask, use_reentrant=False)
            else:
                x = layer(x, cos, sin, mask)
        h = self.model.norm(x)
        head = self.model.embed_tokens.weight if self.lm_head is None else self.lm_head.weight
        return F.linear(h, head).float()


class meta_parameters:
    """Parameters made inside are on the meta device (no memory, no init); works on torch 1.13 and 2.x."""

    def __enter__(self):
        self.saved = nn.Module.register_parameter

        def register(module, name, param):
            if param is not None and param.device.type != "meta":
                param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
            self.saved(module, name, param)

        nn.Module.register_parameter = register

    def __exit__(self, *exc):
        nn.Module.register_parameter = self.saved
