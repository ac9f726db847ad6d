"""Turn a DeepSpeed checkpoint into a self-contained Hugging Face model directory.

RUN/checkpoints/<tag>/ (default: the newest committed one), RUN/hf_config/ and RUN/tokenizer/
go in; RUN/hf/ (or `out_dir`) comes out: fp32 safetensors weights, config, tokenizer files
and a generation config, loadable with `AutoModelForCausalLM.from_pretrained` and
`AutoTokenizer.from_pretrained`. ZeRO 1–3 checkpoints are consolidated with DeepSpeed's own
zero-to-fp32 (the fp32 master weights, whatever the training precision); a ZeRO-0 checkpoint
holds the whole module in its model-states file, so that is read directly (under bf16 these
are the bf16 weights the engine computed with, stored as fp32).

The output is written under a temporary name and renamed into place, so a killed export
never leaves a half-written model where a user (or `from_pretrained`) would find it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import torch

from pipeline.train.checkpoint import read_latest
from tokenizer.tokenizer_config import SPECIAL_IDS  # fixed for the whole project: <unk>=0, <s>=1, </s>=2 (EOS), <pad>=3

EXPORT_INFO = "export_info.json"


class ExportError(RuntimeError):
    pass


def resolve_tag(checkpoint_root: Path, tag: str | None) -> str:
    """`tag` if given, else the newest committed checkpoint of this trainer, else (a checkpoint
    written by DeepSpeed alone) the folder DeepSpeed's `latest` file names."""
    if tag is None:
        tag = read_latest(checkpoint_root) or _deepspeed_latest(checkpoint_root)
        if tag is None:
            raise ExportError(
                f"{checkpoint_root}: no complete checkpoint (no step_* folder with a COMMITTED record, no `latest` "
                f"naming a folder); pass --tag"
            )
    if not (checkpoint_root / tag).is_dir():
        raise ExportError(f"{checkpoint_root / tag}: checkpoint directory not found")
    return tag


def _deepspeed_latest(checkpoint_root: Path) -> str | None:
    try:
        tag = (checkpoint_root / "latest").read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return tag if tag and "/" not in tag and (checkpoint_root / tag).is_dir() else None


def _model_states_file(tag_dir: Path) -> Path:
    """`mp_rank_00_model_states.pt` (ZeRO 0–2) or rank 0's `zero_pp_rank_0_mp_rank_00_model_states.pt` (ZeRO-3)."""
    if any(tag_dir.glob("*mp_rank_01_model_states.pt")):
        raise ExportError(f"{tag_dir}: several model-parallel ranks; only model-parallel size 1 is supported")
    for name in ("mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_model_states.pt"):
        if (tag_dir / name).is_file():
            return tag_dir / name
    raise ExportError(f"{tag_dir}: no mp_rank_00_model_states.pt — not a DeepSpeed checkpoint")


def zero_stage_of(tag_dir: Path) -> int:
    """The ZeRO stage recorded in the checkpoint's own copy of the DeepSpeed config."""
    states = torch.load(_model_states_file(tag_dir), map_location="cpu", weights_only=False, mmap=True)
    ds_config = states.get("ds_config") or {}
    return int((ds_config.get("zero_optimization") or {}).get("stage", 0))


def consolidated_state_dict(checkpoint_root: Path, tag: str) -> dict[str, torch.Tensor]:
    """One fp32 state dict (parameter name → tensor) from a possibly sharded checkpoint."""
    tag_dir = checkpoint_root / tag
    if zero_stage_of(tag_dir) == 0:
        states = torch.load(_model_states_file(tag_dir), map_location="cpu", weights_only=False)
        return {
            name: tensor.float() if tensor.is_floating_point() else tensor for name, tensor in states["module"].items()
        }
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    with contextlib.redirect_stdout(None):  # it prints a line per shard; rank-0 logs stay readable
        return get_fp32_state_dict_from_zero_checkpoint(str(checkpoint_root), tag=tag)


def load_into_model(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict load, except that a tied output embedding may be absent from `state`."""
    tied = set()
    for key in list(getattr(model, "all_tied_weights_keys", {}) or {}) + list(
        getattr(model, "_tied_weights_keys", None) or []
    ):
        tied.add(key)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [name for name in missing if name not in tied]
    if missing or unexpected:
        raise ExportError(
            f"{source}: checkpoint does not match the model config: missing {missing[:8]}, unexpected {list(unexpected)[:8]}"
        )
    model.tie_weights()


def copy_tokenizer(tokenizer_dir: Path, destination: Path) -> None:
    if not (tokenizer_dir / "tokenizer_config.json").is_file():
        raise ExportError(f"{tokenizer_dir}: not a Hugging Face tokenizer directory (no tokenizer_config.json)")
    for item in sorted(tokenizer_dir.iterdir()):
        if item.is_file():
            shutil.copy2(item, destination / item.name)


def _replace_directory(tmp: Path, final: Path) -> None:
    """Swap `tmp` into `final`; an older export is moved aside first, then removed."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def split_checkpoint_path(path: Path) -> tuple[Path, str | None]:
    """RUN → (RUN, None); RUN/checkpoints/TAG → (RUN, TAG), so either may be given."""
    path = Path(path)
    if path.parent.name == "checkpoints" and any(path.glob("*model_states.pt")):
        return path.parent.parent, path.name
    return path, None


def _run_validation(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / "run.json").read_text()).get("validation")
    except (OSError, ValueError):
        return None


def export_hf(run_dir: Path, tag: str | None = None, out_dir: Path | None = None) -> Path:
    """Export checkpoint `tag` (default: the latest) of `run_dir` to `out_dir` (default RUN/hf).
    `run_dir` may also be a checkpoint directory RUN/checkpoints/TAG."""
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    run_dir, tag_in_path = split_checkpoint_path(run_dir)
    if tag_in_path is not None:
        if tag is not None and tag != tag_in_path:
            raise ExportError(
                f"--tag {tag} contradicts the checkpoint directory {run_dir / 'checkpoints' / tag_in_path}"
            )
        tag = tag_in_path
    checkpoint_root = run_dir / "checkpoints"
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "hf"
    tag = resolve_tag(checkpoint_root, tag)
    config_dir = run_dir / "hf_config"
    if not (config_dir / "config.json").is_file():
        raise ExportError(f"{config_dir / 'config.json'}: not found — the run directory has no model config")

    state = consolidated_state_dict(checkpoint_root, tag)
    config = AutoConfig.from_pretrained(config_dir)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    load_into_model(model, state, str(checkpoint_root / tag))
    model.eval()

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        GenerationConfig(
            bos_token_id=SPECIAL_IDS["bos"], eos_token_id=SPECIAL_IDS["eos"], pad_token_id=SPECIAL_IDS["pad"]
        ).save_pretrained(tmp)
        copy_tokenizer(run_dir / "tokenizer", tmp)
        info = {"run_dir": str(run_dir.resolve()), "tag": tag, "parameters": sum(p.numel() for p in model.parameters())}
        validation = _run_validation(run_dir)
        if validation is not None:  # the blocks the trainer's val_ppl scores; `evaluate` reuses them
            info["validation"] = validation
        (tmp / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        _replace_directory(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
