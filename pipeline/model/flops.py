"""FLOPs per token of a decoder-only transformer (for MFU and the run planner)."""

from __future__ import annotations


def flops_per_token(n_params: int, n_layers: int, d_model: int, seq_len: int) -> float:
    """Training FLOPs per token: 6N for the matmuls (forward 2N, backward 4N) plus 12·L·d·T for
    attention scores and values (PaLM, appendix B; with H·Q = d).

    N is `matmul_params(model)`: every parameter that takes part in a matmul per token, i.e. all
    parameters except position embeddings (a table lookup). The tied token embedding counts once,
    because it is the output projection (a V×d matmul per token); its input lookup is free.
    """
    return 6.0 * n_params + 12.0 * n_layers * d_model * seq_len


def matmul_params(model) -> int:
    """Parameters that cost FLOPs per token (see flops_per_token); tied weights counted once."""
    seen: set[int] = set()
    total = 0
    for name, param in model.named_parameters():
        if id(param) in seen or "wpe" in name.split(".") or "position_embeddings" in name:
            continue
        seen.add(id(param))
        # ZeRO-3 replaces params by empty placeholders; ds_numel holds the real size.
        total += int(getattr(param, "ds_numel", param.numel()))
    return total
