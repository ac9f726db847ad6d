"""The trainer: one object that builds a run, steps it, evaluates it and saves it.

    trainer = Trainer(args)          # configs, data, process group, model, engine, resume
    code = trainer.train()           # steps until done or stopped; 0 finished, 75 preempted
    trainer.close()

Start-up (before any compute): configs validated, data manifest read, model config checked
against the shards, the run directory inspected — a finished run exits 0, a checkpoint is
resumed (after refusing a different data manifest, tokenizer or world size).
Each step (`train_step`): this rank's micro-batches from the sampler → forward/backward/step in
DeepSpeed. After it, one all-reduce decides stop/time-based-checkpoint on all ranks together;
the checkpointer says whether a save is due (`CheckPointer.should_save`).
Exit codes: 0 finished, 75 preempted (checkpoint saved; start again to resume), else error.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import time
from pathlib import Path

import torch

from pipeline.core.fingerprint import fingerprint
from pipeline.core.gpus import peak_tflops
from pipeline.core.typed_config import ConfigError, to_dict
from pipeline.evaluation.heldout import PAD_ID, EvalResult, evaluate_blocks
from pipeline.formats.manifest import check_sizes, load_manifest
from pipeline.formats.packed_shards import PackedBlocks
from pipeline.model import attention
from pipeline.model.flops import flops_per_token, matmul_params
from pipeline.model.model_config import build_hf_config
from pipeline.train import checkpoint, checkpoint_engine, distributed, signals, universal
from pipeline.train.audit import SampleAudit
from pipeline.train.checkpointer import CheckPointer
from pipeline.train.devices import check_compile_toolchain, to_device
from pipeline.train.hooks import TrainHooks
from pipeline.train.metrics import MetricsLogger
from pipeline.train.run_lock import RunInUse, RunLock
from pipeline.train.run_setup import (
    check_resume,
    deepspeed_config,
    prepare_run_dir,
    resolve_precision,
    resume_layout,
    validation_selection,
    write_status,
)
from pipeline.train.sampler import ResumableSampler, batch_tensor
from pipeline.train.signals import EXIT_PREEMPTED
from pipeline.train.train_config import load_configs, resolve_path
from tokenizer.tokenizer_config import SPECIAL_IDS


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


@dataclasses.dataclass
class TrainerState:
    """What the trainer itself must carry across a resume (the engine, optimizer, scheduler and
    RNG states are saved beside it)."""

    step: int = 0
    consumed_samples: int = 0
    tokens: int = 0
    best_val_loss: float | None = None
    best_tag: str | None = None


class Trainer:
    def __init__(self, args: argparse.Namespace, hooks: TrainHooks | None = None):
        # launch/pretrain.py and the train command installed these before any heavy import; a
        # Trainer built another way gets them here (the flag keeps a signal already received)
        self.stop = signals.install()
        self.early_exit: tuple[str, int] | None = None  # (state, exit code) when start-up decides to stop
        self.lock = None
        self.log = None
        self.audit = None
        self.args = args
        self.hooks = hooks or TrainHooks.from_env()
        self.dist = dist = distributed.detect(args.local_rank)
        self.train_cfg, self.model_cfg = load_configs(args.config, args.overrides)
        self.manifest = manifest = check_sizes(
            load_manifest(args.data)
        )  # refuse shards missing or resized since prepare
        if manifest.special_ids != SPECIAL_IDS:
            raise ConfigError(
                f"{Path(args.data) / 'manifest.json'}: special ids {manifest.special_ids}; the model is built "
                f"for {SPECIAL_IDS} (prepare the data with this project's tokenizer)"
            )
        self.hf_config = build_hf_config(self.model_cfg, manifest.vocab_size, manifest.block_size)
        ds_path = resolve_path(args.deepspeed or self.train_cfg.deepspeed_config)
        deepspeed_config(ds_path, self.train_cfg, "fp32")  # validate before any process group exists
        self.run_dir = Path(args.output)
        self.ckpt_dir = self.run_dir / "checkpoints"

        self.device = distributed.init(dist)
        # On an error from here on, no teardown: a barrier would wait for ranks that are inside
        # another collective (a hang until the timeout); dying lets the launcher stop the others.
        self.control = distributed.control_group()
        self._lock_run_dir()
        if self._agree(self.stop.raised):  # a signal during imports, configs or the rendezvous
            self._stop_before_first_step(None)
            return
        self._build(ds_path)

    # ------------------------------------------------------------------ start-up
    def _agree(self, flag: bool) -> bool:
        """True on every rank when `flag` is True on any (one small all-reduce on the gloo group)."""
        vote = torch.tensor([float(flag)])
        torch.distributed.all_reduce(vote, op=torch.distributed.ReduceOp.MAX, group=self.control)
        return bool(vote[0])

    def _lock_run_dir(self) -> None:
        """Rank 0 takes RUN/.trainer.lock for the run's life; every rank learns the verdict, so a
        second trainer on the same --output stops at once on all its ranks."""
        problem = ""
        if self.dist.is_main:
            try:
                self.lock = RunLock(self.run_dir)
                self.lock.acquire()
            except RunInUse as exc:
                problem = str(exc)
        if self._agree(bool(problem)):
            raise RunInUse(problem or f"{self.run_dir}: in use by another trainer (see rank 0's message)")

    def _stop_before_first_step(self, step: int | None) -> None:
        """A stop signal before the first step: nothing new to save; exit 75 so the job requeues."""
        self.state = TrainerState(step=step or 0)
        self.early_exit = ("preempted", EXIT_PREEMPTED)

    def _universal_copy(self, resume: tuple[Path, str], ds_config: dict) -> Path | None:
        """A resume on another world size: ZeRO 1–3 partition the optimizer state per rank, so rank 0
        converts the tag to DeepSpeed's universal form (universal.py) and every rank's engine loads
        that (`load_universal`). Returns the folder to load from; None for ZeRO-0 (nothing partitioned)."""
        if ds_config.get("zero_optimization", {}).get("stage", 0) == 0:
            return None
        ds_config["checkpoint"] = {**ds_config.get("checkpoint", {}), "load_universal": True}
        problem = ""
        if self.dist.is_main:
            try:
                _, line = universal.convert(self.ckpt_dir, resume[0] / resume[1], self.rescaled_from)
                print(line, flush=True)
            except (checkpoint.CheckpointError, OSError) as exc:
                problem = str(exc)
        if self._agree(bool(problem)):  # every rank waits for rank 0's conversion here
            raise checkpoint.CheckpointError(problem or "the universal conversion failed on rank 0 (see its message)")
        return universal.universal_root(self.ckpt_dir)

    def _build(self, ds_path: Path) -> None:
        import deepspeed

        from pipeline.model.build import build_model
        from pipeline.train.optim import WarmupCosineSchedule, describe_optimizer, param_groups

        cfg, dist, manifest = self.train_cfg, self.dist, self.manifest
        self.block_size = manifest.block_size
        self.world = world = dist.world_size
        self.identity = {
            "data_fingerprint": manifest.fingerprint,
            "tokenizer_fingerprint": manifest.tokenizer_fingerprint,
            "world_size": world,
            "model_fingerprint": fingerprint(self.hf_config.to_dict(), length=16),
            "train_fingerprint": fingerprint(to_dict(cfg), length=16),
        }

        if dist.is_main and self.ckpt_dir.is_dir():
            for tag, why, where in checkpoint.set_aside_uncommitted(self.ckpt_dir):
                print(f"[checkpoint] {tag}: not committed ({why}); moved to {where}", flush=True)
        torch.distributed.barrier()
        resume = checkpoint.resume_choice(self.ckpt_dir, self.args.resume)
        resume_state = checkpoint.read_state(resume[0] / resume[1]) if resume else None
        self.rescaled_from = None  # the checkpoint's world size when it differs from this run's
        # the checkpoint's data is an earlier version of this corpus (`prepare --append`): continue on the grown one
        self.grown_from = manifest.earlier_version(resume_state["data_fingerprint"]) if resume_state else None
        if resume_state is not None:
            warnings = check_resume(
                resume_state, self.identity, self.args.allow_data_change, resume[0] / resume[1], self.grown_from
            )
            # the checkpoint's global batch is kept; on another world size grad accum is derived
            micro, accum = resume_layout(resume_state, cfg, world, resume[0] / resume[1])
            self.train_cfg = cfg = dataclasses.replace(cfg, micro_batch_size=micro, grad_accum_steps=accum)
            if resume_state["world_size"] != world:
                self.rescaled_from = resume_state["world_size"]
        self.global_batch = cfg.global_batch(world)
        self.total_steps = cfg.total_steps(world, self.block_size)
        self.precision = resolve_precision(cfg.precision, self.device)
        ds_config = deepspeed_config(ds_path, cfg, self.precision)
        if resume_state is not None:
            if resume_state["step"] >= self.total_steps:
                self.state = TrainerState(step=resume_state["step"])
                self.early_exit = ("finished", 0)
                return
            if dist.is_main:
                for warning in warnings:
                    print(f"[train] warning: {warning}", flush=True)
        load_dir = self._universal_copy(resume, ds_config) if self.rescaled_from else None

        model = build_model(self.hf_config, self.model_cfg.activation_checkpointing, cfg.seed)
        n_matmul = matmul_params(model)
        groups = param_groups(model, cfg.weight_decay)
        self.engine, _, _, self.scheduler = deepspeed.initialize(
            args=distributed.engine_args(self.device),
            model=model,
            model_parameters=groups,
            config=ds_config,
            lr_scheduler=lambda opt: WarmupCosineSchedule(opt, cfg.lr, cfg.min_lr, cfg.warmup_steps, self.total_steps),
        )
        checkpoint_engine.make_safe(self.engine)  # weights_only loading, per-rank fsync of saves
        if cfg.compile:  # in place (nn.Module.compile): parameter names, checkpoints and exports unchanged
            check_compile_toolchain(self.device)
            self.engine.compile()  # DeepSpeed's: nn.Module.compile with the accelerator's backend (inductor)
        self.state = TrainerState()
        self.load_seconds = None
        if resume_state is not None:
            load_started = time.monotonic()
            reseed = cfg.seed if self.rescaled_from else None  # no RNG file of a new rank: (seed, step, rank)
            self.load_state_dict(checkpoint.load(self.engine, resume[0], resume[1], dist.rank, load_dir, reseed))
            if load_dir is not None:
                universal.repair_after_load(self.engine, load_dir, resume[1])  # DeepSpeed's ZeRO-3 loader
            self.load_seconds = time.monotonic() - load_started
        signals.install()  # again: nothing imported since may keep a handler of its own
        if self._agree(self.stop.raised):  # a signal while the model was built or loaded
            self._stop_before_first_step(self.state.step)
            return
        self.train_blocks = PackedBlocks(manifest.shard_paths("train"))
        self.val_blocks = PackedBlocks(manifest.shard_paths("validation"))
        self.val_sources = manifest.block_sources("validation")  # per-source held-out loss; None: not recorded
        run_info = {
            "train_config": to_dict(cfg),
            "model_config": to_dict(self.model_cfg),
            "deepspeed_config": ds_config,
            "data": str(Path(self.args.data).resolve()),
            **self.identity,
            "precision": self.precision,
            "global_batch": self.global_batch,
            "block_size": self.block_size,
            "total_steps": self.total_steps,
            "matmul_params": n_matmul,
            "resumed_from": str(resume[0] / resume[1]) if resume else None,
            # what every evaluation scores; `python -m pipeline evaluate` reuses it (via the export)
            "validation": validation_selection(len(self.val_blocks), cfg.eval_max_blocks),
        }
        if dist.is_main:
            prepare_run_dir(self.run_dir, self.hf_config, manifest, run_info)
        self.log = MetricsLogger(
            self.run_dir, enabled=dist.is_main, tensorboard=cfg.tensorboard, resume_step=self.state.step
        )
        self.checkpointer = CheckPointer(
            self.engine, self.ckpt_dir, cfg, dist.rank, self.log, self.hooks.save_pause_s, self.control
        )
        self.sampler = ResumableSampler(
            len(self.train_blocks),
            cfg.micro_batch_size,
            cfg.grad_accum_steps,
            dist.rank,
            world,
            cfg.seed,
            consumed_samples=self.state.consumed_samples,
            schedule=self._epoch_schedule(resume_state),
        )
        self.flops = flops_per_token(
            n_matmul, self.hf_config.num_hidden_layers, self.hf_config.hidden_size, self.block_size
        )
        self.peak = cfg.peak_tflops_per_device or (
            peak_tflops(torch.cuda.get_device_name(self.device), self.precision) if self.device.type == "cuda" else None
        )
        if cfg.audit_samples:  # records of the steps redone from here are dropped
            self.audit = SampleAudit(self.run_dir, dist.rank, self.state.step, world)
        self.last_eval: EvalResult | None = None
        self.log.message(
            f"[train] {'resuming at step ' + str(self.state.step) if self.state.step else 'starting'}: "
            f"{self.total_steps} steps × global batch {self.global_batch} ({cfg.micro_batch_size} micro × "
            f"{cfg.grad_accum_steps} accum × {world} ranks) × {self.block_size} tokens = "
            f"{self.total_steps * self.global_batch * self.block_size:,} tokens "
            f"(budget {cfg.train_tokens or 'max_steps'}), {len(self.train_blocks):,} train blocks "
            f"(~{self.total_steps * self.global_batch / len(self.train_blocks):.2f} epochs), {n_matmul:,} matmul "
            f"params, {self.precision}, ZeRO stage {self.engine.zero_optimization_stage()}"
            + (", compiled" if self.engine.is_compiled else "")
            + f"; optimizer {describe_optimizer(self.engine)}"
            + (f"; checkpoint loaded in {self.load_seconds:.2f}s" if self.load_seconds is not None else "")
        )
        if self.grown_from is not None:
            first = self.sampler.grow(len(self.train_blocks))
            self.log.message(
                f"[train] the corpus grew: version {self.grown_from['version']} ({self.grown_from['train_blocks']:,} "
                f"train blocks) → version {len(manifest.raw['versions'])} ({len(self.train_blocks):,}); the epoch in "
                f"progress finishes over the blocks it started with, every epoch from {first} is a permutation of "
                f"all {len(self.train_blocks):,}; held-out loss is over the grown validation split from here on"
            )
        if self.rescaled_from:
            self.log.message(
                f"[train] world size {self.rescaled_from} → {world}: global batch {self.global_batch} kept "
                f"(grad accum {cfg.grad_accum_steps}), same sample stream; RNG re-seeded from (seed, step, rank); "
                f"losses continue within float rounding of the {self.rescaled_from}-rank run, not bitwise"
            )
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        self.log.message(attention.describe(self.hf_config, self.block_size, dtype, self.device))

    def _epoch_schedule(self, resume_state: dict | None) -> list | None:
        """The sampler's epoch sizes so far (sampler.py), from the checkpoint."""
        if resume_state is None:
            return None
        if self.grown_from is not None:
            return resume_state.get("data_schedule") or [(0, self.grown_from["train_blocks"])]
        if resume_state["data_fingerprint"] != self.identity["data_fingerprint"]:
            return None  # --allow-data-change: the position is kept over the new blocks
        return resume_state.get("data_schedule")

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """The trainer's own state plus what a resume must check (saved as trainer_state.json and
        inside DeepSpeed's client state); engine, optimizer and RNG states are saved beside it."""
        return {
            **dataclasses.asdict(self.state),
            **self.identity,
            "epoch": self.sampler.epoch,
            "data_schedule": self.sampler.schedule,  # epoch sizes of a corpus that grew
            "global_batch": self.global_batch,
            "scheduler": self.scheduler.state_dict(),
            "time": time.time(),
        }

    def load_state_dict(self, state: dict) -> None:
        """The trainer's part of a checkpoint (the sampler is rebuilt from consumed_samples)."""
        self.state = TrainerState(**{f.name: state[f.name] for f in dataclasses.fields(TrainerState)})

    # ------------------------------------------------------------------ steps
    def train_step(self) -> None:
        """One optimizer step over this rank's micro-batches (their mean loss adds to the log window)."""
        micro_batches = self.sampler.next_step()
        micro_losses = []
        for indices in micro_batches:
            fetch = time.perf_counter()
            ids = to_device(batch_tensor(self.train_blocks, indices), self.device)
            self._window["wait"] += time.perf_counter() - fetch
            labels = ids.masked_fill(ids == PAD_ID, -100)
            loss = self.engine(input_ids=ids, labels=labels).loss
            self.engine.backward(loss)
            self.engine.step()
            # added micro-batch by micro-batch, as always: the logged loss stays bitwise the same
            self._window["loss"] += loss.detach().double() / len(micro_batches)
            if self.audit is not None:
                micro_losses.append(loss.item().hex())
        if self.audit is not None:
            self.audit.record(self.state.step + 1, micro_batches, micro_losses)
        self.state.step += 1
        self.state.consumed_samples = self.sampler.consumed_samples
        self.state.tokens += self.global_batch * self.block_size

    def evaluate(self) -> bool:
        """Evaluate on the validation blocks and log it; True when this is a new best loss."""
        cfg = self.train_cfg
        result = self.last_eval = evaluate_blocks(
            self.engine,
            self.val_blocks,
            cfg.eval_micro_batch_size or cfg.micro_batch_size,
            cfg.eval_max_blocks,
            self.device,
            self.dist.rank,
            self.world,
            block_sources=self.val_sources,
        )
        record = {
            "kind": "eval",
            "step": self.state.step,
            "tokens": self.state.tokens,
            "val_loss": result.loss,
            "val_ppl": result.perplexity,
            "val_acc": result.accuracy,
            "val_tokens": result.tokens,
        }
        if result.per_source:  # one entry per source among the scored blocks
            record["val_by_source"] = {
                name: {"val_loss": r.loss, "val_ppl": r.perplexity, "val_acc": r.accuracy, "val_tokens": r.tokens}
                for name, r in result.per_source.items()
            }
        self.log.log(record)
        if self.state.best_val_loss is None or result.loss < self.state.best_val_loss:
            self.state.best_val_loss = result.loss
            self.state.best_tag = checkpoint.tag_for(self.state.step)
            return True
        return False

    def _new_window(self) -> None:
        self._window = {
            "steps": 0,
            "time": 0.0,
            "wait": 0.0,
            "loss": torch.zeros((), dtype=torch.float64, device=self.device),
        }

    def _log_train(self, run_started: float, steps_this_run: int) -> None:
        window, world = self._window, self.world
        loss_sum = window["loss"].clone()
        torch.distributed.all_reduce(loss_sum)  # also syncs the device: timings are real
        n = window["steps"]
        step_time = window["time"] / n
        tokens_per_s = self.global_batch * self.block_size / step_time
        grad_norm = self.engine.get_global_grad_norm()
        peak_mem = torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else None
        self.log.log(
            {
                "kind": "train",
                "step": self.state.step,
                "epoch": self.state.consumed_samples / len(self.train_blocks),
                "consumed_samples": self.state.consumed_samples,
                "tokens": self.state.tokens,
                "loss": loss_sum.item() / (n * world),
                "lr": self.scheduler.get_last_lr()[0],
                "grad_norm": float(grad_norm) if grad_norm is not None else None,
                "tokens_per_s": tokens_per_s,
                "samples_per_s": self.global_batch / step_time,
                "step_time_s": step_time,
                "data_wait_share": window["wait"] / window["time"],
                "mfu": self.flops * tokens_per_s / (world * self.peak * 1e12) if self.peak else None,
                "peak_mem_gib": peak_mem / 2**30 if peak_mem is not None else None,
                "eta_s": (self.total_steps - self.state.step) * (time.monotonic() - run_started) / steps_this_run,
            }
        )
        self._new_window()

    def _vote(self) -> tuple[bool, bool]:
        """One collective decides for all ranks: a stop signal anywhere, or rank 0's clock."""
        votes = torch.tensor([float(self.stop.raised), float(self.checkpointer.time_due())])  # CPU: see control_group
        torch.distributed.all_reduce(votes, op=torch.distributed.ReduceOp.MAX, group=self.control)
        return bool(votes[0]), bool(votes[1])

    def train(self) -> int:
        """Step until the budget is done (0) or a stop signal was checkpointed (75)."""
        cfg, state = self.train_cfg, self.state
        if self.early_exit == ("finished", 0):
            if self.dist.is_main:
                print(
                    f"[train] {self.run_dir}: already complete at step {state.step} of {self.total_steps}; nothing to do",
                    flush=True,
                )
            write_status(self.run_dir, self.dist, "finished", state.step, self.total_steps, 0)
            return 0
        if self.early_exit is not None:
            self.stop.ignore_further()
            if self.dist.is_main:
                print(
                    f"[train] stop signal during start-up: nothing new to save (step {state.step}); exit "
                    f"{EXIT_PREEMPTED} (start the same command again to resume)",
                    flush=True,
                )
            write_status(self.run_dir, self.dist, "preempted", state.step, None, EXIT_PREEMPTED)
            return EXIT_PREEMPTED
        self.engine.train()
        self._new_window()
        run_started = time.monotonic()
        steps_this_run = 0
        while state.step < self.total_steps:
            step_started = time.perf_counter()
            self.train_step()
            steps_this_run += 1
            self._window["steps"] += 1
            self._window["time"] += time.perf_counter() - step_started
            if state.step % cfg.log_interval == 0 or state.step == self.total_steps:
                self._log_train(run_started, steps_this_run)

            if self.hooks.signal_at_step == state.step and self.dist.is_main:
                os.kill(os.getpid(), signal.SIGUSR1)
            finished = state.step >= self.total_steps
            new_best = False
            if state.step % cfg.eval_interval == 0 or finished:
                new_best = self.evaluate()
            stopping, time_due = self._vote()
            reason = self.checkpointer.should_save(
                state.step, stopping=stopping, finished=finished, new_best=new_best, time_due=time_due
            )
            if reason:
                self.checkpointer.save(state.step, self.state_dict(), reason, keep={state.best_tag} - {None})
            if stopping and not finished:
                self.stop.ignore_further()
                self.log.message(
                    f"[train] stop signal: checkpoint {checkpoint.tag_for(state.step)} saved; "
                    f"exit {EXIT_PREEMPTED} (start the same command again to resume)"
                )
                write_status(self.run_dir, self.dist, "preempted", state.step, self.total_steps, EXIT_PREEMPTED)
                return EXIT_PREEMPTED

        if cfg.export_at_end and self.dist.is_main:
            from pipeline.train.export import export_hf

            out = export_hf(self.run_dir, checkpoint.read_latest(self.ckpt_dir))
            self.log.message(f"[export] Hugging Face model + tokenizer in {out}")
        write_status(self.run_dir, self.dist, "finished", state.step, self.total_steps, 0)
        if self.last_eval is not None:
            e = self.last_eval
            self.log.message(
                f"[train] finished {state.step} steps: held-out perplexity {e.perplexity:.3f} "
                f"(val loss {e.loss:.4f}, next-token accuracy {e.accuracy:.3f}, {e.tokens:,} tokens)"
            )
        return 0

    def close(self) -> None:
        """Flush and close the run's files, leave the process group (all ranks together), then
        release the run directory."""
        if self.log is not None:
            self.log.close()
        if self.audit is not None:
            self.audit.close()
            self.audit = None
        distributed.shutdown()
        if self.lock is not None:
            self.lock.release()


def run(args: argparse.Namespace) -> int:
    """`python -m pipeline train` / launch/pretrain.py: one rank of a run."""
    trainer = Trainer(args)
    code = trainer.train()
    trainer.close()
    return code
