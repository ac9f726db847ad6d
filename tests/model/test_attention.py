"""The SDPA kernel the trainer logs is the one torch can actually run for those inputs.

The oracle is independent of the probe: scaled_dot_product_attention restricted to one backend
(torch.nn.attention.sdpa_kernel) runs when that backend supports the inputs and raises when it
does not. On the CPU torch has a flash kernel (no dropout) and the math fallback.
"""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from pipeline.model.attention import describe
from pipeline.model.attention import sdpa_kernel as probe
from tests.helpers.train_fixtures import tiny_hf_model

BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "mem-efficient": SDPBackend.EFFICIENT_ATTENTION}


def runs_with(backend: SDPBackend, heads: int, head_dim: int, block: int, dtype, dropout: float) -> bool:
    q = torch.randn(1, heads, block, head_dim, dtype=dtype)
    try:
        with sdpa_kernel([backend]):
            torch.nn.functional.scaled_dot_product_attention(q, q, q, dropout_p=dropout, is_causal=True)
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize("dropout", [0.0, 0.1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_probe_names_the_kernel_torch_runs(dropout, dtype):
    config = tiny_hf_model().config  # 2 heads × head dim 16
    config.attn_pdrop = dropout
    kernel = probe(config, 64, dtype, torch.device("cpu"))
    fused = [name for name, backend in BACKENDS.items() if runs_with(backend, 2, 16, 64, dtype, dropout)]
    if kernel.startswith("math"):
        assert fused == [], f"probe says math, but {fused} can run these inputs"
    else:
        assert kernel in fused, f"probe says {kernel}, runnable: {fused}"


def test_log_line_names_kernel_inputs_and_switches():
    config = tiny_hf_model().config
    line = describe(config, 64, torch.float32, torch.device("cpu"))
    assert line.startswith("[train] attention: SDPA → ")
    assert "2 heads × head dim 16, 64 tokens, causal, dropout 0.1" in line and "flash on" in line
