"""Which kernel torch's scaled_dot_product_attention (SDPA) runs for the model's attention.

The models are built with `attn_implementation="sdpa"`; torch then picks, per call, the first
kernel in its priority order that is enabled (torch.backends.cuda.enable_*_sdp) and supports the
inputs: FlashAttention-2, memory-efficient (xFormers-style), cuDNN, or the unfused math path
(which materialises the T×T score matrix). Nothing reports the choice, and the math fallback is
silent and several times slower on a GPU, so the trainer logs it once at start.

The probe asks torch's own dispatcher (`torch._fused_sdp_choice`, what SDPA itself calls) with
tensors of the shapes, dtype and device of a training step: one sequence, all heads, the full
block, causal, attention dropout as configured, no mask (transformers passes `is_causal=True`
and no mask when a batch has no padding mask, as in training). It runs no model and draws no
random numbers, so it cannot change a run.
"""

from __future__ import annotations

import torch

NAMES = {
    "MATH": "math (unfused, materialises the T×T scores)",
    "FLASH_ATTENTION": "flash",
    "EFFICIENT_ATTENTION": "mem-efficient",
    "CUDNN_ATTENTION": "cudnn",
}


def attention_shape(hf_config) -> tuple[int, int, float]:
    """(heads, head dim, attention dropout) of a transformers decoder config (GPT-2 or Llama)."""
    heads = getattr(hf_config, "num_attention_heads", None) or hf_config.n_head
    width = getattr(hf_config, "hidden_size", None) or hf_config.n_embd
    head_dim = getattr(hf_config, "head_dim", None) or width // heads
    dropout = getattr(hf_config, "attn_pdrop", None)
    if dropout is None:
        dropout = getattr(hf_config, "attention_dropout", 0.0)
    return heads, head_dim, float(dropout)


def sdpa_kernel(hf_config, block_size: int, dtype: torch.dtype, device: torch.device, training: bool = True) -> str:
    """The SDPA kernel torch picks for one training step of this model, e.g. "flash"."""
    heads, head_dim, dropout = attention_shape(hf_config)
    q = torch.empty(1, heads, block_size, head_dim, dtype=dtype, device=device)
    choice = torch._fused_sdp_choice(q, q, q, None, dropout if training else 0.0, True)
    name = torch.nn.attention.SDPBackend(choice).name
    return NAMES.get(name, name.lower())


def backend_flags() -> str:
    """torch's global SDPA switches (they only matter on CUDA; CPU has flash and math)."""
    b = torch.backends.cuda
    flags = {
        "flash": b.flash_sdp_enabled(),
        "mem_efficient": b.mem_efficient_sdp_enabled(),
        "cudnn": b.cudnn_sdp_enabled(),
        "math": b.math_sdp_enabled(),
    }
    return ", ".join(f"{k} {'on' if v else 'off'}" for k, v in flags.items())


def describe(hf_config, block_size: int, dtype: torch.dtype, device: torch.device) -> str:
    """One log line: the kernel, the inputs it was chosen for, and the switches."""
    heads, head_dim, dropout = attention_shape(hf_config)
    kernel = sdpa_kernel(hf_config, block_size, dtype, device)
    return (
        f"[train] attention: SDPA → {kernel} on {device.type} ({str(dtype).removeprefix('torch.')}, "
        f"{heads} heads × head dim {head_dim}, {block_size} tokens, causal, dropout {dropout:g}; "
        f"backend flags: {backend_flags()})"
    )
