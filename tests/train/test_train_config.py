import json

import pytest

from pipeline.core.typed_config import ConfigError, from_dict
from pipeline.model.model_config import ModelConfig, build_hf_config
from pipeline.train.optim import lr_at, param_groups
from pipeline.train.train_config import REPO_ROOT, TrainConfig, load_configs
from pipeline.train.trainer import deepspeed_config
from tests.helpers.train_fixtures import tiny_hf_model


def test_shipped_configs_load_and_build():
    for name in ("tiny-cpu", "zh-3b1"):
        train, model = load_configs(REPO_ROOT / f"configs/train/{name}.yaml")
        config = build_hf_config(model, vocab_size=32000, block_size=512)
        assert config.vocab_size == 32000 and config.tie_word_embeddings
        assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (1, 2, 3)
    train, model = load_configs(REPO_ROOT / "configs/train/zh-3b1.yaml")
    assert train.total_steps(world_size=8, block_size=512) == 11826  # ceil(3.1e9 / (512 × 512))
    small = build_hf_config(load_configs(REPO_ROOT / "configs/train/zh-3b1.yaml")[1], 32000, 512)
    assert (small.n_layer, small.n_embd, small.n_head, small.n_positions) == (12, 768, 12, 512)


def test_overrides_reach_model_and_train_configs():
    train, model = load_configs(REPO_ROOT / "configs/train/tiny-cpu.yaml", ["max_steps=7", "model.hf_config.n_layer=3"])
    assert train.max_steps == 7 and model.hf_config["n_layer"] == 3
    assert (train.compile, train.fused_adam) == (False, False)  # off unless asked for
    train, _ = load_configs(REPO_ROOT / "configs/train/tiny-cpu.yaml", ["compile=true", "fused_adam=true"])
    assert (train.compile, train.fused_adam) == (True, True)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["max_stesp=3"], "did you mean 'max_steps'"),
        (["train_tokens=1e6"], "exactly one of train_tokens"),
        (["micro_batch_size=0"], "micro_batch_size: must be > 0"),
        (["min_lr=1.0"], "min_lr"),
        (["precision=fp16"], "precision"),
        (["model.hf_config.vocab_size=5"], "hf_config.vocab_size: set by the trainer"),
        (["compile=1"], "compile: expected true/false, got 1"),
        (["fused_adam=fast"], "fused_adam: expected true/false, got 'fast'"),
    ],
)
def test_bad_values_fail_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_configs(REPO_ROOT / "configs/train/tiny-cpu.yaml", overrides)


def test_positions_shorter_than_blocks_are_refused():
    model = from_dict(ModelConfig, {"hf_config": {"n_positions": 128}})
    with pytest.raises(ConfigError, match="128 positions but the data's blocks hold 512"):
        build_hf_config(model, 1000, 512)


def test_deepspeed_json_may_not_repeat_trainer_keys(tmp_path):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 2}, "gradient_clipping": 2.0}))
    with pytest.raises(ConfigError, match="gradient_clipping: set by the trainer"):
        deepspeed_config(path, from_dict(TrainConfig, {"max_steps": 1}), "fp32")
    path.write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    built = deepspeed_config(path, from_dict(TrainConfig, {"max_steps": 1, "micro_batch_size": 3}), "bf16")
    assert built["optimizer"]["params"]["torch_adam"] is True
    assert built["train_micro_batch_size_per_gpu"] == 3 and built["bf16"] == {"enabled": True}


def test_weight_decay_only_on_matrices_not_embeddings_biases_norms():
    model = tiny_hf_model()
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = sorted(names[id(p)] for p in decay["params"])
    assert decayed and all(n.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")) for n in decayed)
    skipped = {names[id(p)] for p in no_decay["params"]}
    assert {"transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight"} <= skipped
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0


def test_schedule_warms_up_then_decays_to_min():
    values = [lr_at(s, 1.0, 0.1, 10, 110) for s in range(111)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[10] == pytest.approx(1.0) and values[60] == pytest.approx(0.55)
    assert values[110] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))
