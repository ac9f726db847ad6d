"""The device check: what the trainer does on one GPU, in numbers (benchmarks/gpu_check.sh runs it).

    python benchmarks/gpu_check.py [--out DIR] [--steps 200]     # on a GPU, with the CUDA build of torch
    python benchmarks/gpu_check.py --cpu --out DIR                # dry run: same code path, CPU, tiny

Steps, each a real command of the product (`python -m pipeline ...` in its own process):
1. generate a corpus and prepare it (clean, dedup, split, tokenizer, pack into 512-token blocks);
2. train gpt2-small-zh in bf16 on one device for `--steps` steps, once per variant: eager with
   torch's AdamW, fused AdamW, torch.compile, both; from each run's metrics: tokens/s and MFU
   (median over the logged windows after the first quarter: compilation and warm-up excluded),
   peak memory, the last loss, the SDPA kernel the trainer logged;
3. checkpoint save seconds (the end-of-run save of the eager run) and load seconds (a resume);
4. bitwise resume: the eager run again, stopped by SIGUSR1 at half way and resumed; its
   per-micro-batch losses against the uninterrupted run's (the sample audit). When they differ,
   a third, uninterrupted run tells whether the kernels themselves are nondeterministic (then
   resume is not what breaks it);
5. (GPU) one-GPU-per-task binding: a short run with LOCAL_RANK=3 and one visible device.
Order: eager, resume, binding, then the other variants, so that when `--budget-s` runs out a
variant is what is skipped (recorded as skipped). Writes OUT/gpu_check.json and OUT/gpu_check.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SCHEMA = "gpu_check/1"
VARIANTS = {  # name → train overrides
    "eager": [],
    "fused": ["fused_adam=true"],
    "compile": ["compile=true"],
    "compile+fused": ["compile=true", "fused_adam=true"],
}
TINY_MODEL = {  # the dry run's model: same code path, seconds per step on a CPU
    "architecture": "gpt2",
    "hf_config": {"n_layer": 1, "n_embd": 32, "n_head": 2},  # n_positions: the data's block size
}
SIGNAL_AT_STEP = "ZH_PRETRAIN_TEST_SIGNAL_AT_STEP"  # pipeline/train/hooks.py


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", "--dry-run", dest="cpu", action="store_true", help="CPU build, tiny model, few steps")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/gpu_check")
    parser.add_argument("--work", type=Path, help="corpus, data and runs (default OUT/work)")
    parser.add_argument("--data", type=Path, help="an already prepared data directory (skips corpus + prepare)")
    parser.add_argument("--steps", type=int, help="steps per variant (default 200; dry run 4)")
    parser.add_argument("--micro-batch", type=int, help="micro-batch (default 32; dry run 2)")
    parser.add_argument("--corpus-size", help="generated corpus (default 24MB; dry run 1.5MB)")
    parser.add_argument(
        "--vocab",
        type=int,
        help="tokenizer vocabulary (default 8000, what bench_prepare uses on the generated corpus; dry run 2000)",
    )
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS)
    )
    parser.add_argument("--peak-tflops", type=float, help="MFU denominator (default: the GPU's dense bf16 peak)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="skip what would start after this many seconds")
    args = parser.parse_args(argv)
    gpu = not args.cpu
    args.steps = args.steps or (200 if gpu else 4)
    args.micro_batch = args.micro_batch or (32 if gpu else 2)
    args.corpus_size = args.corpus_size or ("24MB" if gpu else "1.5MB")
    args.vocab = args.vocab or (8000 if gpu else 2000)
    args.block = 512 if gpu else 128
    args.work = args.work or args.out / "work"
    args.variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    return args


# ---------------------------------------------------------------------------------- processes
def child_env(**extra: str) -> dict:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env


def run(command: list[str], log: Path, env: dict | None = None) -> dict:
    """Run a command to the end; its output to `log`. Returns code, seconds, peak RSS (GiB)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=REPO, env=env or child_env(), stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: its peak RSS
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"code": proc.returncode, "seconds": time.monotonic() - started, "max_rss_gib": usage.ru_maxrss / 2**20}


def pipeline_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", *args]


class Budget:
    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()


# ---------------------------------------------------------------------------------- environment
def environment(args) -> dict:
    import torch

    from pipeline.core.gpus import peak_tflops

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": "cpu",
        "device_name": platform.processor() or platform.machine(),
        "precision": "fp32",
        "peak_tflops": args.peak_tflops,
        "peak_source": "--peak-tflops" if args.peak_tflops else None,
    }
    if not args.cpu:
        if not torch.cuda.is_available():
            raise SystemExit(
                f"error: no CUDA device (torch {torch.__version__}, cuda {torch.version.cuda}); "
                "run benchmarks/gpu_check.sh (it installs the CUDA build), or pass --cpu for the dry run"
            )
        name = torch.cuda.get_device_name(0)
        info.update(
            device="cuda",
            device_name=name,
            device_count=torch.cuda.device_count(),
            memory_gib=torch.cuda.get_device_properties(0).total_memory / 2**30,
            precision="bf16" if torch.cuda.is_bf16_supported() else "fp32",
        )
        if not args.peak_tflops:
            info["peak_tflops"] = peak_tflops(name, info["precision"])
            info["peak_source"] = "pipeline/core/gpus.py (dense, no sparsity)" if info["peak_tflops"] else None
    elif not args.peak_tflops:
        # No hardware peak for a CPU: a nominal 1 TFLOP/s keeps the MFU arithmetic on the same path,
        # and the label says it is not a real peak.
        info["peak_tflops"], info["peak_source"] = 1.0, "nominal (dry run: not a hardware peak)"
    return info


def mfu_label(env: dict) -> str:
    if env["peak_tflops"] is None:
        return "MFU: n/a (unknown GPU; pass --peak-tflops)"
    if env["device"] == "cpu":
        return f"MFU vs a nominal {env['peak_tflops']:g} TFLOP/s (CPU dry run: not a hardware peak)"
    return f"MFU vs {env['device_name']} dense {env['precision']} peak {env['peak_tflops']:g} TFLOP/s"


# ---------------------------------------------------------------------------------- data
def prepare_data(args, results: dict) -> Path:
    corpus, data = args.work / "corpus", args.data or args.work / "data"
    logs = args.out / "logs"
    if args.data is None and not (corpus / "generation.json").is_file():
        step = run(
            pipeline_cmd("generate-corpus", "--output", str(corpus), "--size", args.corpus_size), logs / "corpus.log"
        )
        check(step, "generate-corpus", logs / "corpus.log")
    if not (data / "manifest.json").is_file():
        overrides = [f"tokenizer.vocab_size={args.vocab}", f"pack.block_size={args.block}", "dedup.num_buckets=4"]
        overrides += ["split.min_validation_documents=40"]
        workers = str(max(1, min(8, (os.cpu_count() or 2) - 1)))
        step = run(
            pipeline_cmd(
                "prepare", "--input", f"{corpus}/**/*.csv*", "--output", str(data), "--workers", workers, "--quiet",
                *overrides,
            ),
            logs / "prepare.log",
        )  # fmt: skip
        check(step, "prepare", logs / "prepare.log")
        results["data"]["prepare_seconds"] = step["seconds"]
    manifest = json.loads((data / "manifest.json").read_text())
    results["data"].update(
        {
            "corpus_size": args.corpus_size if args.data is None else f"given: {data}",
            "vocab_size": manifest["vocab_size"],
            "block_size": manifest["block_size"],
            "train_blocks": sum(s["blocks"] for s in manifest["splits"]["train"]["shards"]),
        }
    )
    return data


def check(step: dict, what: str, log: Path) -> None:
    if step["code"] != 0:
        tail = log.read_text()[-3000:] if log.is_file() else ""
        raise SystemExit(f"error: {what} failed (exit {step['code']}); log {log}:\n{tail}")


# ---------------------------------------------------------------------------------- training
def write_train_config(args, env: dict, block_size: int) -> Path:
    import yaml

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    if args.cpu:
        model = work / "model-tiny.yaml"
        tiny = {**TINY_MODEL, "hf_config": {**TINY_MODEL["hf_config"], "n_positions": block_size}}
        model.write_text(yaml.safe_dump(tiny))
    else:
        model = REPO / "configs/model/gpt2-small-zh.yaml"
    train = {
        "model_config": str(model),
        "deepspeed_config": str(REPO / "configs/deepspeed/zero2.json"),
        "micro_batch_size": args.micro_batch,
        "grad_accum_steps": 1,
        "max_steps": args.steps,
        "lr": 6.0e-4,
        "min_lr": 6.0e-5,
        "warmup_steps": max(1, args.steps // 10),
        "precision": env["precision"],
        "eval_interval": 10**9,  # only the end-of-run evaluation
        "eval_max_blocks": 64 if not args.cpu else 4,
        "checkpoint_interval_steps": 10**9,  # only the end (and stop) saves
        "keep_last": 1,
        "log_interval": max(1, args.steps // 20),
        "tensorboard": False,
        "audit_samples": True,  # per-micro-batch losses as exact hex: the bitwise comparison
        "peak_tflops_per_device": env["peak_tflops"],
    }
    path = work / "train.yaml"
    path.write_text(yaml.safe_dump(train, sort_keys=False))
    return path


def train(args, config: Path, data: Path, name: str, overrides: list[str], env_extra: dict | None = None) -> dict:
    run_dir = args.work / "runs" / name
    log = args.out / "logs" / f"train-{name}.log"
    command = pipeline_cmd("train", "--config", str(config), "--data", str(data), "--output", str(run_dir), *overrides)
    step = run(command, log, child_env(**(env_extra or {})))
    step.update(run_dir=run_dir, log=log, text=log.read_text())
    return step


def train_records(run_dir: Path) -> list[dict]:
    from pipeline.formats.metrics_file import read_metrics

    return read_metrics(run_dir, "train")


def log_value(text: str, prefix: str) -> str | None:
    """The rest of the last log line that starts with `prefix`."""
    found = [line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix)]
    return found[-1].strip() if found else None


def save_seconds(text: str) -> float | None:
    import re

    found = re.findall(r"\[checkpoint\] saved step_\d+ \([^,]+, ([0-9.]+)s\)", text)
    return float(found[-1]) if found else None


def load_seconds(text: str) -> float | None:
    import re

    found = re.findall(r"checkpoint loaded in ([0-9.]+)s", text)
    return float(found[-1]) if found else None


def summarize_variant(name: str, step: dict, peak_tflops: float | None, device: str) -> dict:
    """Steady-state numbers of one training run: windows after the first quarter of the run."""
    if step["code"] != 0:
        return {"variant": name, "ok": False, "exit_code": step["code"], "log": str(step["log"])}
    records = train_records(step["run_dir"])
    steady = [r for r in records if r["step"] > records[-1]["step"] // 4] or records
    tokens_per_s = statistics.median(r["tokens_per_s"] for r in steady)
    mfus = [r["mfu"] for r in steady if r.get("mfu") is not None]
    mems = [r["peak_mem_gib"] for r in records if r.get("peak_mem_gib") is not None]
    return {
        "variant": name,
        "ok": True,
        "steps": records[-1]["step"],
        "tokens_per_s": tokens_per_s,
        "step_time_s": statistics.median(r["step_time_s"] for r in steady),
        "mfu": statistics.median(mfus) if mfus else None,
        # GPU: torch.cuda.max_memory_allocated; CPU: the trainer process's peak RSS
        "peak_memory_gib": max(mems) if mems else step["max_rss_gib"],
        "peak_memory_kind": "cuda max allocated" if device == "cuda" else "process max RSS",
        "final_loss": records[-1]["loss"],
        "wall_seconds": step["seconds"],
        "first_window_step_time_s": records[0]["step_time_s"],  # includes compilation
        "optimizer": (log_value(step["text"], "[train] starting:") or "").rpartition("; optimizer ")[2] or None,
        "attention": log_value(step["text"], "[train] attention:"),
    }


def audit_losses(run_dir: Path) -> dict[int, list]:
    from pipeline.train.audit import read_audit

    return {step: entry["losses"] for step, entry in read_audit(run_dir, 1).items()}


def first_difference(a: dict, b: dict) -> str | None:
    for step in sorted(set(a) | set(b)):
        if a.get(step) != b.get(step):
            x, y = a.get(step), b.get(step)
            if x and y:
                diff = max(abs(float.fromhex(p) - float.fromhex(q)) for p, q in zip(x[0], y[0]))
                return f"step {step}: micro-batch losses differ by up to {diff:.3g}"
            return f"step {step}: present in one run only"
    return None


def bitwise_resume(args, config: Path, data: Path, reference: dict, results: dict, budget: Budget) -> dict:
    """Cut the eager run at half way (SIGUSR1, as SLURM does), resume, compare bit for bit."""
    cut_at = max(1, args.steps // 2)
    cut = train(args, config, data, "eager-resume", [], {SIGNAL_AT_STEP: str(cut_at)})
    if cut["code"] != 75:
        return {"bitwise": None, "reason": f"the stopped run exited {cut['code']}, not 75 (log {cut['log']})"}
    resumed = train(args, config, data, "eager-resume", [])
    results["checkpoint"]["save_seconds_at_stop"] = save_seconds(cut["text"])
    results["checkpoint"]["load_seconds"] = load_seconds(resumed["text"])
    if resumed["code"] != 0:
        return {"bitwise": None, "reason": f"the resumed run failed (exit {resumed['code']}, log {resumed['log']})"}
    difference = first_difference(audit_losses(reference["run_dir"]), audit_losses(resumed["run_dir"]))
    if difference is None:
        return {
            "bitwise": True,
            "reason": f"stopped at step {cut_at} and resumed: all {args.steps} steps' per-micro-batch losses "
            "equal the uninterrupted run's bit for bit",
        }
    verdict = {"bitwise": False, "difference": difference}
    if budget.left() < reference["seconds"]:
        verdict["reason"] = (
            f"resumed run differs ({difference}); no time left to tell resume from kernel nondeterminism"
        )
        return verdict
    again = train(args, config, data, "eager-repeat", [])
    repeat_difference = first_difference(audit_losses(reference["run_dir"]), audit_losses(again["run_dir"]))
    if repeat_difference is not None:
        verdict["reason"] = (
            f"not a resume problem: two uninterrupted runs already differ ({repeat_difference}) — "
            "nondeterministic GPU kernels (atomic adds in backward); resume is exact only up to them"
        )
    else:
        verdict["reason"] = (
            f"resume breaks it: two uninterrupted runs agree bit for bit, the resumed one differs ({difference})"
        )
    return verdict


def binding_check(args, config: Path, data: Path) -> dict:
    """One GPU per task as SLURM binds it: LOCAL_RANK 3, one visible device (→ cuda:0)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]
    extra = {"CUDA_VISIBLE_DEVICES": visible, "LOCAL_RANK": "3", "RANK": "0", "WORLD_SIZE": "1"}
    step = train(args, config, data, "binding", ["max_steps=3", "model.hf_config.n_layer=1"], extra)
    return {
        "ok": step["code"] == 0,
        "setup": f"LOCAL_RANK=3, CUDA_VISIBLE_DEVICES={visible}",
        "exit_code": step["code"],
        "log": str(step["log"]),
    }


# ---------------------------------------------------------------------------------- report
def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def markdown(results: dict) -> str:
    env, label = results["environment"], results["mfu_label"]
    lines = [
        f"# GPU check — {env['device_name']} ({env['device']}), {results['mode']}",
        "",
        f"torch {env['torch']} (CUDA {env['cuda']}), {env['precision']}, model {results['model']}, "
        f"micro-batch {results['micro_batch']} × {results['data'].get('block_size')} tokens, "
        f"{results['steps']} steps per variant, vocab {results['data'].get('vocab_size')}. {label}.",
        "",
        "| variant | tokens/s | MFU | step s | first window step s | peak memory GiB | final loss | optimizer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in results["variants"]:
        if not v.get("ok"):
            lines.append(
                f"| {v['variant']} | {v.get('skipped') or 'FAILED (exit ' + str(v.get('exit_code')) + ')'} |||||||"
            )
            continue
        number = lambda key, spec, v=v: format(v[key], spec) if finite(v[key]) else "n/a"  # noqa: E731
        mfu = f"{v['mfu']:.1%}" if finite(v["mfu"]) else "n/a"
        lines.append(
            f"| {v['variant']} | {number('tokens_per_s', ',.0f')} | {mfu} | {number('step_time_s', '.4f')} | "
            f"{number('first_window_step_time_s', '.3f')} | {number('peak_memory_gib', '.2f')} "
            f"({v['peak_memory_kind']}) | {number('final_loss', '.4f')} | {v['optimizer']} |"
        )
    ck, resume, attention = results["checkpoint"], results["resume"], results.get("attention")
    fmt = lambda x: f"{x:.2f} s" if finite(x) else "n/a"  # noqa: E731
    lines += [
        "",
        f"- Attention: {attention or 'n/a'}",
        f"- Checkpoint save: {fmt(ck.get('save_seconds_at_end'))} (end of run), {fmt(ck.get('save_seconds_at_stop'))} "
        f"(on the stop signal); load: {fmt(ck.get('load_seconds'))}",
        f"- Bitwise resume: {'yes' if resume.get('bitwise') else 'no' if resume.get('bitwise') is False else 'n/a'} — "
        f"{resume.get('reason')}",
        f"- One-GPU-per-task binding: {results['binding'].get('summary')}",
        f"- Total: {results['total_seconds']:.0f} s",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    budget = Budget(args.budget_s)
    args.out.mkdir(parents=True, exist_ok=True)
    env = environment(args)
    results = {
        "schema": SCHEMA,
        "mode": "cpu dry run" if args.cpu else "gpu",
        "environment": env,
        "mfu_label": mfu_label(env),
        "model": "tiny (1 × 32)" if args.cpu else "gpt2-small-zh",
        "steps": args.steps,
        "micro_batch": args.micro_batch,
        "data": {},
        "variants": [],
        "checkpoint": {},
        "resume": {},
        "binding": {},
    }
    data = prepare_data(args, results)
    config = write_train_config(args, env, results["data"]["block_size"])
    reference = None
    if "eager" in args.variants:
        step = train(args, config, data, "eager", VARIANTS["eager"])
        results["variants"].append(summarize_variant("eager", step, env["peak_tflops"], env["device"]))
        if step["code"] == 0:
            reference = step
            results["checkpoint"]["save_seconds_at_end"] = save_seconds(step["text"])
            results["attention"] = log_value(step["text"], "[train] attention:")
    # Resume and binding before the other variants: when time runs out, a variant is what is skipped.
    if reference is None:
        results["resume"] = {"bitwise": None, "reason": "no successful eager run to compare against"}
    elif budget.left() < 2 * reference["seconds"]:
        results["resume"] = {"bitwise": None, "reason": "skipped: out of time"}
    else:
        results["resume"] = bitwise_resume(args, config, data, reference, results, budget)
    if args.cpu:
        results["binding"] = {"ok": None, "summary": "n/a on the CPU (no devices to bind)"}
    else:
        results["binding"] = binding_check(args, config, data)
        b = results["binding"]
        results["binding"]["summary"] = f"{'ok' if b['ok'] else 'FAILED'} ({b['setup']}; exit {b['exit_code']})"
    for name in [v for v in args.variants if v != "eager"]:
        estimate = reference["seconds"] * 2 if reference else 0.0  # a compiled run: roughly twice the eager wall
        if budget.left() < estimate:
            results["variants"].append({"variant": name, "ok": False, "skipped": "skipped: out of time"})
            continue
        step = train(args, config, data, name, VARIANTS[name])
        results["variants"].append(summarize_variant(name, step, env["peak_tflops"], env["device"]))
    results["total_seconds"] = time.monotonic() - started
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (args.out / "gpu_check.md").write_text(markdown(results))
    print(markdown(results))
    failed = [v["variant"] for v in results["variants"] if not v.get("ok") and not v.get("skipped")]
    return 1 if failed or results["binding"].get("ok") is False else 0


if __name__ == "__main__":
    sys.exit(main())
