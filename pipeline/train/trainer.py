"""The training loop: one screen of steps around DeepSpeed, plus start-up and shutdown.

Start-up (before any compute): configs validated, data manifest read, model config checked
against the shards, the run directory inspected — a finished run exits 0, a checkpoint is
resumed (after refusing a different data manifest, tokenizer or world size).
Each step: this rank's micro-batches from the sampler → forward/backward/step in DeepSpeed →
one all-reduce that decides stop/time-based-checkpoint on all ranks together.
Exit codes: 0 finished, 75 preempted (checkpoint saved; start again to resume), else error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import time
from pathlib import Path

import torch

from pipeline.core.atomic import write_json_atomically
from pipeline.core.fingerprint import fingerprint
from pipeline.core.gpus import peak_tflops
from pipeline.core.typed_config import ConfigError, to_dict
from pipeline.evaluation.heldout import PAD_ID, evaluate_blocks
from pipeline.formats.manifest import check_sizes, load_manifest
from pipeline.formats.packed_shards import PackedBlocks
from pipeline.model.flops import flops_per_token, matmul_params
from pipeline.model.model_config import ModelConfig, build_hf_config
from pipeline.train.metrics import MetricsLogger
from pipeline.train.sampler import ResumableSampler, batch_tensor
from pipeline.train.signals import EXIT_PREEMPTED, StopFlag
from pipeline.train.train_config import TrainConfig, load_configs, resolve_path
from tokenizer.tokenizer_config import SPECIAL_IDS

from . import checkpoint, distributed

# The trainer sets these from the train config; a DeepSpeed JSON that also sets them would be
# a second, silently ignored source of truth.
TRAINER_OWNED_DS_KEYS = (
    "train_batch_size",
    "train_micro_batch_size_per_gpu",
    "gradient_accumulation_steps",
    "gradient_clipping",
    "optimizer",
    "scheduler",
    "bf16",
    "fp16",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="configs/train/NAME.yaml")
    parser.add_argument("--data", required=True, help="prepared data directory (manifest.json)")
    parser.add_argument("--output", required=True, help="run directory; resumes if it holds checkpoints")
    parser.add_argument("--deepspeed", help="DeepSpeed JSON (default: the train config's deepspeed_config)")
    parser.add_argument("--resume", help="checkpoint directory RUN/checkpoints/<tag> to resume from")
    parser.add_argument(
        "--allow-data-change",
        action="store_true",
        help="continue a checkpoint on a different data manifest or tokenizer",
    )
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE overrides, e.g. max_steps=20 model.hf_config.n_layer=4")


def deepspeed_config(path: Path, cfg: TrainConfig, precision: str) -> dict:
    try:
        base = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read DeepSpeed JSON: {exc}") from None
    for key in TRAINER_OWNED_DS_KEYS:
        if key in base:
            raise ConfigError(f"{path}: {key}: set by the trainer from the train config, remove it here")
    return {
        **base,
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": cfg.grad_accum_steps,
        "gradient_clipping": cfg.grad_clip,
        "bf16": {"enabled": precision == "bf16"},
        # torch's AdamW: no C++ build, and bit-exact resume (DeepSpeed's Adam recomputes β^t).
        # Built by DeepSpeed from this entry (not passed as a client optimizer), which is what
        # makes ZeRO-Offload accept it.
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": cfg.lr,
                "betas": [cfg.adam_beta1, cfg.adam_beta2],
                "eps": cfg.adam_eps,
                "weight_decay": cfg.weight_decay,
                "torch_adam": True,
            },
        },
        "steps_per_print": base.get("steps_per_print", 1 << 30),
    }


def resolve_precision(requested: str, device: torch.device) -> str:
    if requested == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return requested


@dataclasses.dataclass
class Progress:
    step: int = 0
    consumed_samples: int = 0
    tokens: int = 0
    best_val_loss: float | None = None
    best_tag: str | None = None


def find_resume_tag(ckpt_dir: Path, resume: str | None) -> tuple[Path, str] | None:
    if resume:
        path = Path(resume)
        if checkpoint.step_of(path.name) is None or not path.is_dir():
            raise checkpoint.CheckpointError(f"--resume {resume}: expected a RUN/checkpoints/step_XXXXXXXX directory")
        return path.parent, path.name
    tag = checkpoint.read_latest(ckpt_dir)
    return (ckpt_dir, tag) if tag else None


def check_resume(state: dict, identity: dict, allow_data_change: bool, where: Path) -> list[str]:
    """Refuse a resume that cannot be exact; returns warnings for tolerated changes."""
    for key, what in (("data_fingerprint", "data manifest"), ("tokenizer_fingerprint", "tokenizer")):
        if state[key] != identity[key] and not allow_data_change:
            raise checkpoint.CheckpointError(
                f"{where}: the checkpoint was trained on a different {what} ({key} {state[key]} != {identity[key]}). "
                f"Pass --allow-data-change to continue on the new data deliberately, or use --output for a new run."
            )
    if state["world_size"] != identity["world_size"]:
        raise checkpoint.CheckpointError(
            f"{where}: written by {state['world_size']} data-parallel ranks, this run has {identity['world_size']}. "
            f"ZeRO partitions optimizer state per rank, so restart with {state['world_size']} ranks. Changing the world "
            f"size mid-run is not supported yet: DeepSpeed can convert the checkpoint (`python -m "
            f"deepspeed.checkpoint.ds_to_universal --input_folder {where} --output_folder {where}_universal`), but this "
            f"trainer does not load universal checkpoints; the weights alone are in `python launch/export.py`'s output."
        )
    if state["model_fingerprint"] != identity["model_fingerprint"]:
        raise checkpoint.CheckpointError(f"{where}: the model config differs from the checkpoint's; refusing to load")
    warnings = []
    if state["data_fingerprint"] != identity["data_fingerprint"]:
        warnings.append("continuing on different data (--allow-data-change): the sample stream position is kept")
    if state["train_fingerprint"] != identity["train_fingerprint"]:
        warnings.append("the train config differs from the checkpoint's (new values apply from here on)")
    return warnings


def prepare_run_dir(run_dir: Path, hf_config, manifest, run_info: dict) -> None:
    """Rank 0: model config, tokenizer copy and the resolved run description."""
    run_dir.mkdir(parents=True, exist_ok=True)
    hf_config.save_pretrained(run_dir / "hf_config")
    tokenizer_copy = run_dir / "tokenizer"
    if manifest.tokenizer_dir.is_dir():
        if tokenizer_copy.exists():
            shutil.rmtree(tokenizer_copy)
        shutil.copytree(manifest.tokenizer_dir, tokenizer_copy)
    write_json_atomically(run_dir / "run.json", run_info)


def write_status(run_dir: Path, dist, state: str, step: int, total_steps: int, exit_code: int) -> None:
    """RUN/status.json: how the last start ended, for launchers that hide exit codes (torchrun)."""
    if dist.is_main:
        write_json_atomically(
            run_dir / "status.json",
            {"state": state, "step": step, "total_steps": total_steps, "exit_code": exit_code, "time": time.time()},
        )


def run(args: argparse.Namespace) -> int:
    dist = distributed.detect(args.local_rank)
    train_cfg, model_cfg = load_configs(args.config, args.overrides)
    manifest = check_sizes(load_manifest(args.data))  # refuse shards missing or resized since prepare
    if manifest.special_ids != SPECIAL_IDS:
        raise ConfigError(
            f"{Path(args.data) / 'manifest.json'}: special ids {manifest.special_ids}; the model is built "
            f"for {SPECIAL_IDS} (prepare the data with this project's tokenizer)"
        )
    hf_config = build_hf_config(model_cfg, manifest.vocab_size, manifest.block_size)
    ds_path = resolve_path(args.deepspeed or train_cfg.deepspeed_config)
    deepspeed_config(ds_path, train_cfg, "fp32")  # validate before any process group exists
    run_dir = Path(args.output)
    ckpt_dir = run_dir / "checkpoints"

    device = distributed.init(dist)
    # On an error, no teardown: a barrier would wait for ranks that are inside another collective
    # (a hang until the timeout); dying lets the launcher stop the other ranks at once.
    code = train(args, dist, device, train_cfg, model_cfg, manifest, hf_config, ds_path, run_dir, ckpt_dir)
    distributed.shutdown()
    return code


def train(
    args,
    dist,
    device,
    train_cfg: TrainConfig,
    model_cfg: ModelConfig,
    manifest,
    hf_config,
    ds_path: Path,
    run_dir: Path,
    ckpt_dir: Path,
) -> int:
    import deepspeed

    from pipeline.model.build import build_model
    from pipeline.train.optim import WarmupCosineSchedule, param_groups

    block_size = manifest.block_size
    world = dist.world_size
    global_batch = train_cfg.global_batch(world)
    total_steps = train_cfg.total_steps(world, block_size)
    precision = resolve_precision(train_cfg.precision, device)
    ds_config = deepspeed_config(ds_path, train_cfg, precision)
    identity = {
        "data_fingerprint": manifest.fingerprint,
        "tokenizer_fingerprint": manifest.tokenizer_fingerprint,
        "world_size": world,
        "model_fingerprint": fingerprint(hf_config.to_dict(), length=16),
        "train_fingerprint": fingerprint(to_dict(train_cfg), length=16),
    }

    stop = StopFlag().install()  # early: a signal during start-up stops after the first step
    if dist.is_main and ckpt_dir.is_dir():
        removed = checkpoint.discard_incomplete(ckpt_dir)
        if removed:
            print(f"[checkpoint] removed incomplete checkpoint(s) from an interrupted save: {removed}", flush=True)
    torch.distributed.barrier()
    resume = find_resume_tag(ckpt_dir, args.resume)
    state = checkpoint.read_state(resume[0] / resume[1]) if resume else None
    if state is not None:
        warnings = check_resume(state, identity, args.allow_data_change, resume[0] / resume[1])
        if state["step"] >= total_steps:
            if dist.is_main:
                print(
                    f"[train] {run_dir}: already complete at step {state['step']} of {total_steps}; nothing to do",
                    flush=True,
                )
            write_status(run_dir, dist, "finished", state["step"], total_steps, 0)
            return 0
        newer = [p.name for p in checkpoint.tag_dirs(resume[0]) if checkpoint.step_of(p.name) > state["step"]]
        if newer:
            warnings.append(
                f"resuming from {resume[1]} although newer checkpoints exist ({newer}); "
                f"they are replaced as training reaches their steps"
            )
        if dist.is_main:
            for warning in warnings:
                print(f"[train] warning: {warning}", flush=True)

    model = build_model(hf_config, model_cfg.activation_checkpointing, train_cfg.seed)
    n_matmul = matmul_params(model)
    groups = param_groups(model, train_cfg.weight_decay)
    engine, _, _, scheduler = deepspeed.initialize(
        model=model,
        model_parameters=groups,
        config=ds_config,
        lr_scheduler=lambda opt: WarmupCosineSchedule(
            opt, train_cfg.lr, train_cfg.min_lr, train_cfg.warmup_steps, total_steps
        ),
    )
    progress = Progress()
    if state is not None:
        loaded = checkpoint.load(engine, resume[0], resume[1], dist.rank)
        progress = Progress(**{f.name: loaded[f.name] for f in dataclasses.fields(Progress)})
    run_info = {
        "train_config": to_dict(train_cfg),
        "model_config": to_dict(model_cfg),
        "deepspeed_config": ds_config,
        "data": str(Path(args.data).resolve()),
        **identity,
        "precision": precision,
        "global_batch": global_batch,
        "block_size": block_size,
        "total_steps": total_steps,
        "matmul_params": n_matmul,
        "resumed_from": str(resume[0] / resume[1]) if resume else None,
    }
    if dist.is_main:
        prepare_run_dir(run_dir, hf_config, manifest, run_info)
    log = MetricsLogger(run_dir, enabled=dist.is_main, tensorboard=train_cfg.tensorboard, resume_step=progress.step)

    train_blocks = PackedBlocks(manifest.shard_paths("train"))
    val_blocks = PackedBlocks(manifest.shard_paths("validation"))
    sampler = ResumableSampler(
        len(train_blocks),
        train_cfg.micro_batch_size,
        train_cfg.grad_accum_steps,
        dist.rank,
        world,
        train_cfg.seed,
        consumed_samples=progress.consumed_samples,
    )
    flops = flops_per_token(n_matmul, hf_config.num_hidden_layers, hf_config.hidden_size, block_size)
    peak = train_cfg.peak_tflops_per_device or (
        peak_tflops(torch.cuda.get_device_name(device), precision) if device.type == "cuda" else None
    )
    audit = None
    if train_cfg.audit_samples:
        (run_dir / "audit").mkdir(parents=True, exist_ok=True)
        # steps after the checkpoint are redone: a fresh start begins a fresh log
        audit = open(run_dir / "audit" / f"rank{dist.rank}.jsonl", "a" if progress.step else "w")
    control = distributed.control_group()
    log.message(
        f"[train] {'resuming at step ' + str(progress.step) if progress.step else 'starting'}: {total_steps} steps × "
        f"global batch {global_batch} ({train_cfg.micro_batch_size} micro × {train_cfg.grad_accum_steps} accum × {world} "
        f"ranks) × {block_size} tokens = {total_steps * global_batch * block_size:,} tokens "
        f"(budget {train_cfg.train_tokens or 'max_steps'}), {len(train_blocks):,} train blocks "
        f"(~{total_steps * global_batch / len(train_blocks):.2f} epochs), {n_matmul:,} matmul params, {precision}, "
        f"ZeRO stage {engine.zero_optimization_stage()}"
    )

    def client_state() -> dict:
        return {
            **dataclasses.asdict(progress),
            **identity,
            "epoch": sampler.epoch,
            "global_batch": global_batch,
            "scheduler": scheduler.state_dict(),
            "time": time.time(),
        }

    last_save_time = time.monotonic()

    def save(reason: str) -> None:
        nonlocal last_save_time
        tag = checkpoint.tag_for(progress.step)
        started = time.monotonic()
        checkpoint.save(engine, ckpt_dir, tag, client_state(), dist.rank, train_cfg.debug_save_pause_s)
        if dist.is_main:
            pruned = checkpoint.prune(ckpt_dir, train_cfg.keep_last, {progress.best_tag} - {None})
            log.message(
                f"[checkpoint] saved {tag} ({reason}, {time.monotonic() - started:.1f}s)"
                + (f", pruned {pruned}" if pruned else "")
            )
        last_save_time = time.monotonic()

    last_eval = None

    def run_eval() -> bool:
        """Evaluate; True when this is a new best validation loss."""
        nonlocal last_eval
        result = last_eval = evaluate_blocks(
            engine,
            val_blocks,
            train_cfg.eval_micro_batch_size or train_cfg.micro_batch_size,
            train_cfg.eval_max_blocks,
            device,
            dist.rank,
            world,
        )
        log.log(
            {
                "kind": "eval",
                "step": progress.step,
                "tokens": progress.tokens,
                "val_loss": result.loss,
                "val_ppl": result.perplexity,
                "val_acc": result.accuracy,
                "val_tokens": result.tokens,
            }
        )
        if progress.best_val_loss is None or result.loss < progress.best_val_loss:
            progress.best_val_loss = result.loss
            progress.best_tag = checkpoint.tag_for(progress.step)
            return True
        return False

    engine.train()
    window = {"steps": 0, "time": 0.0, "wait": 0.0, "loss": torch.zeros((), dtype=torch.float64, device=device)}
    run_started = time.monotonic()
    steps_this_run = 0
    while progress.step < total_steps:
        step_started = time.perf_counter()
        wait = 0.0
        micro_batches = sampler.next_step()
        micro_losses = []
        for indices in micro_batches:
            fetch = time.perf_counter()
            ids = batch_tensor(train_blocks, indices).to(device, non_blocking=True)
            wait += time.perf_counter() - fetch
            labels = ids.masked_fill(ids == PAD_ID, -100)
            loss = engine(input_ids=ids, labels=labels).loss
            engine.backward(loss)
            engine.step()
            window["loss"] += loss.detach().double() / len(micro_batches)
            if audit is not None:
                micro_losses.append(loss.item().hex())
        if audit is not None:
            audit.write(
                json.dumps(
                    {"step": progress.step + 1, "samples": [i.tolist() for i in micro_batches], "losses": micro_losses}
                )
                + "\n"
            )
            audit.flush()
        progress.step += 1
        progress.consumed_samples = sampler.consumed_samples
        progress.tokens += global_batch * block_size
        steps_this_run += 1
        window["steps"] += 1
        window["wait"] += wait
        window["time"] += time.perf_counter() - step_started

        if progress.step % train_cfg.log_interval == 0 or progress.step == total_steps:
            loss_sum = window["loss"].clone()
            torch.distributed.all_reduce(loss_sum)  # also syncs the device: timings are real
            n = window["steps"]
            step_time = window["time"] / n
            tokens_per_s = global_batch * block_size / step_time
            grad_norm = engine.get_global_grad_norm()
            log.log(
                {
                    "kind": "train",
                    "step": progress.step,
                    "epoch": progress.consumed_samples / len(train_blocks),
                    "consumed_samples": progress.consumed_samples,
                    "tokens": progress.tokens,
                    "loss": loss_sum.item() / (n * world),
                    "lr": scheduler.get_last_lr()[0],
                    "grad_norm": float(grad_norm) if grad_norm is not None else None,
                    "tokens_per_s": tokens_per_s,
                    "samples_per_s": global_batch / step_time,
                    "step_time_s": step_time,
                    "data_wait_share": window["wait"] / window["time"],
                    "mfu": flops * tokens_per_s / (world * peak * 1e12) if peak else None,
                    "eta_s": (total_steps - progress.step) * (time.monotonic() - run_started) / steps_this_run,
                }
            )
            window = {"steps": 0, "time": 0.0, "wait": 0.0, "loss": torch.zeros_like(window["loss"])}

        if train_cfg.debug_signal_at_step == progress.step and dist.is_main:
            os.kill(os.getpid(), signal.SIGUSR1)
        finished = progress.step >= total_steps
        new_best = False
        if progress.step % train_cfg.eval_interval == 0 or finished:
            new_best = run_eval()
        # One collective decides for all ranks: a stop signal anywhere, or rank 0's clock.
        time_due = (time.monotonic() - last_save_time) / 60 >= train_cfg.checkpoint_interval_minutes
        votes = torch.tensor([float(stop.raised), float(time_due and dist.is_main)])  # CPU: see control_group
        torch.distributed.all_reduce(votes, op=torch.distributed.ReduceOp.MAX, group=control)
        stopping, time_due = bool(votes[0]), bool(votes[1])
        if stopping or finished or new_best or time_due or progress.step % train_cfg.checkpoint_interval_steps == 0:
            reason = (
                "stop signal"
                if stopping
                else "end"
                if finished
                else "new best val loss"
                if new_best
                else "timer"
                if time_due
                else "interval"
            )
            save(reason)
        if stopping and not finished:
            stop.ignore_further()
            log.message(
                f"[train] stop signal: checkpoint {checkpoint.tag_for(progress.step)} saved; "
                f"exit {EXIT_PREEMPTED} (start the same command again to resume)"
            )
            write_status(run_dir, dist, "preempted", progress.step, total_steps, EXIT_PREEMPTED)
            log.close()
            return EXIT_PREEMPTED

    if train_cfg.export_at_end and dist.is_main:
        from pipeline.train.export import export_hf

        out = export_hf(run_dir, checkpoint.read_latest(ckpt_dir))
        log.message(f"[export] Hugging Face model + tokenizer in {out}")
    write_status(run_dir, dist, "finished", progress.step, total_steps, 0)
    if last_eval is not None:
        log.message(
            f"[train] finished {progress.step} steps: held-out perplexity {last_eval.perplexity:.3f} "
            f"(val loss {last_eval.loss:.4f}, next-token accuracy {last_eval.accuracy:.3f}, "
            f"{last_eval.tokens:,} tokens)"
        )
    log.close()
    if audit is not None:
        audit.close()
    return 0
