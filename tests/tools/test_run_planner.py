"""The run planner against DeepSpeed's own memory estimators, a re-measurement of activation
memory, and the command line on a prepared data directory."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline.model.model_config import ModelConfig, build_hf_config
from pipeline.tools.run_planner import (
    PlanInputs,
    PrepRates,
    StageRate,
    activation_bytes,
    checkpoint_disk_bytes,
    make_plan,
    measured_tokens_per_s,
    model_shape,
    model_state_bytes,
    prep_projection,
    rates_from_timings,
)
from tests.conftest import prepare_args, run_pipeline

ROOT = Path(__file__).resolve().parents[2]
GPT2_SMALL_ZH = ModelConfig(
    architecture="gpt2", hf_config={"n_layer": 12, "n_embd": 768, "n_head": 12, "n_positions": 512}
)


@pytest.fixture(scope="module")
def small_zh():
    """A real gpt2-small-zh instance (vocab 32000) and the planner's shape of the same config."""
    config = build_hf_config(GPT2_SMALL_ZH, vocab_size=32000, block_size=512)
    torch.manual_seed(0)
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_config(config), model_shape(config)


def deepspeed_printout(function, model, **kwargs) -> dict[str, tuple[float, float]]:
    """options → (per CPU GB, per GPU GB) from DeepSpeed's printed table."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        function(model, **kwargs)
    rows = re.findall(r"^\s*([\d.]+)GB \|\s*([\d.]+)GB \| (.+)$", buffer.getvalue(), flags=re.M)
    assert rows, buffer.getvalue()
    return {options.replace("OffloadDeviceEnum.", ""): (float(cpu), float(gpu)) for cpu, gpu, options in rows}


@pytest.mark.parametrize("gpus_per_node,nodes", [(1, 1), (8, 1), (8, 2)])
def test_model_states_match_deepspeeds_estimators(small_zh, gpus_per_node, nodes):
    from deepspeed.runtime.zero import stage3, stage_1_and_2

    model, shape = small_zh
    total, largest = stage3.model_to_params(model)
    assert (shape.params, shape.largest_layer_params) == (total, largest)
    assert 105e6 < shape.params < 115e6  # "~110M parameters" of the config's comment

    gb = lambda value: round(value / 2**30, 2)  # noqa: E731
    plan = lambda stage, offload: model_state_bytes(shape, stage, gpus_per_node, nodes, offload)  # noqa: E731
    hw = {"num_gpus_per_node": gpus_per_node, "num_nodes": nodes}

    cpu, gpu = stage_1_and_2.estimate_zero2_model_states_mem_needs(total, cpu_offload=False, **hw)
    assert plan(2, "none").gpu_total == gpu
    cpu, gpu = stage_1_and_2.estimate_zero2_model_states_mem_needs(total, cpu_offload=True, **hw)
    assert (plan(2, "optimizer").gpu_total, plan(2, "optimizer").cpu) == (gpu, cpu)
    for offload, (optimizer, params) in {
        "none": (False, False),
        "optimizer": (True, False),
        "all": (True, True),
    }.items():
        cpu, gpu, _ = stage3.estimate_zero3_model_states_mem_needs(
            total, largest, cpu_offload=optimizer, cpu_offload_params=params, **hw
        )
        assert plan(3, offload).gpu_total == gpu, offload
        if optimizer:
            assert plan(3, offload).cpu == cpu, offload

    printed2 = deepspeed_printout(stage_1_and_2.estimate_zero2_model_states_mem_needs_all_live, model, **hw)
    assert printed2["offload_optimizer=none"][1] == gb(plan(2, "none").gpu_total)
    assert printed2["offload_optimizer=cpu"] == (gb(plan(2, "optimizer").cpu), gb(plan(2, "optimizer").gpu_total))
    printed3 = deepspeed_printout(stage3.estimate_zero3_model_states_mem_needs_all_live, model, **hw)
    assert printed3["offload_param=none, offload_optimizer=none, zero_init=1"][1] == gb(plan(3, "none").gpu_total)
    assert printed3["offload_param=none, offload_optimizer=cpu, zero_init=1"] == (
        gb(plan(3, "optimizer").cpu),
        gb(plan(3, "optimizer").gpu_total),
    )
    assert printed3["offload_param=cpu, offload_optimizer=cpu, zero_init=1"] == (
        gb(plan(3, "all").cpu),
        gb(plan(3, "all").gpu_total),
    )


def test_stages_save_memory_in_order(small_zh):
    _, shape = small_zh
    totals = [model_state_bytes(shape, stage, 8).gpu_total for stage in range(4)]
    assert totals[0] == 20 * shape.params  # 2 + (2 + 4) + 12 bytes per parameter, nothing partitioned
    assert totals[0] > totals[1] > totals[2] > totals[3]


def saved_activation_bytes(layers: int, checkpointing: bool, s=128, b=2, h=256, a=4, vocab=1000) -> int:
    """Bytes of every tensor autograd saves for backward (parameters excluded), bf16, dropout on."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        n_layer=layers, n_embd=h, n_head=a, n_positions=s, vocab_size=vocab, bos_token_id=1, eos_token_id=2
    )
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config).to(torch.bfloat16).train()
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    ids = torch.randint(0, vocab, (b, s), generator=torch.Generator().manual_seed(0))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(input_ids=ids, labels=ids)
    return sum(saved.values())


@pytest.mark.parametrize("checkpointing", [False, True])
def test_activation_bytes_per_layer_match_a_measurement(checkpointing):
    from transformers import GPT2Config

    measured = (saved_activation_bytes(3, checkpointing) - saved_activation_bytes(1, checkpointing)) / 2
    shapes = [
        model_shape(GPT2Config(n_layer=n, n_embd=256, n_head=4, n_positions=128, vocab_size=1000)) for n in (1, 3)
    ]
    planned = [
        activation_bytes(shape, micro_batch=2, seq=128, checkpointing=checkpointing, attention="eager")
        for shape in shapes
    ]
    assert (planned[1] - planned[0]) / 2 == pytest.approx(measured, rel=0.05)


def test_time_budget_and_disk_arithmetic(small_zh):
    _, shape = small_zh
    inputs = PlanInputs(
        shape=shape, block_size=512, train_tokens=int(3.1e9), gpu="rtx3090", micro_batch=8, grad_accum=8, mfu=0.3
    )
    plan = make_plan(inputs)
    assert plan["batch"]["tokens_per_step"] == 8 * 8 * 512
    assert plan["budget"]["steps"] == -(-3_100_000_000 // 32768)
    expected_tps = 71e12 * 0.3 / plan["time"]["flops_per_token"]
    assert plan["time"]["tokens_per_s"] == pytest.approx(expected_tps)
    assert plan["time"]["eta_s"] == pytest.approx(plan["budget"]["steps"] * 32768 / expected_tps)
    assert plan["disk"]["total"] == 3 * 14 * shape.params + 4 * shape.params
    slower = make_plan(PlanInputs(**{**inputs.__dict__, "checkpointing": True}))
    assert slower["time"]["eta_s"] == pytest.approx(plan["time"]["eta_s"] * 4 / 3)


def test_measured_throughput_from_metrics(tmp_path):
    lines = [{"kind": "train", "step": 1, "tokens_per_s": 10.0}]  # warm-up, skipped
    lines += [{"kind": "train", "step": i, "tokens_per_s": float(1000 + i)} for i in range(2, 7)]
    lines += [{"kind": "eval", "step": 6, "val_loss": 1.0}]
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    assert measured_tokens_per_s(path) == 1004.0


def test_checkpoint_disk_formula_matches_a_real_checkpoint():
    """16.3 bytes/parameter measured for fp32 ZeRO-2 (tests/train/test_export.py writes such checkpoints)."""
    from transformers import GPT2Config

    shape = model_shape(GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=64, vocab_size=600))
    assert shape.params == 46_720
    assert checkpoint_disk_bytes(shape, "fp32") == 16 * 46_720


def test_command_line_with_data_dir(tmp_path):
    from tests.helpers.tiny_lm import make_data_dir, tiny_corpus, train_tokenizer_dir

    docs = tiny_corpus(300, seed=3)
    data = make_data_dir(tmp_path / "data", train_tokenizer_dir(tmp_path / "tok", docs=docs), docs[:250], docs[250:])
    model_yaml = tmp_path / "tiny.yaml"
    model_yaml.write_text("architecture: gpt2\nhf_config: {n_layer: 2, n_embd: 64, n_head: 4, n_positions: 64}\n")
    command = [
        sys.executable,
        "-m",
        "pipeline",
        "plan",
        "--model",
        str(model_yaml),
        "--data",
        str(data),
        "--gpus",
        "2",
        "--gpu",
        "h100",
        "--micro-batch",
        "4",
        "--json",
        "--zero",
        "3",
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    manifest = json.loads((data / "manifest.json").read_text())
    train_blocks = sum(s["blocks"] for s in manifest["splits"]["train"]["shards"])
    assert plan["budget"]["train_tokens"] == train_blocks * 32  # one epoch of the train split
    assert plan["batch"]["tokens_per_step"] == 4 * 2 * 32 and plan["model"]["vocab"] == 600
    assert {row["stage"] for row in plan["memory"]} == {3}
    text = subprocess.run(command[:-3], capture_output=True, text=True, cwd=ROOT).stdout
    assert "tokens per step" in text and "ETA" in text and "Disk" in text
    # no GPU measured these: the printed throughput and ETA say they are estimates
    assert "ESTIMATE, not measured on a GPU" in text and "(estimates: see Throughput)" in text
    assert "(measured GPU numbers go in docs/benchmarks.md#gpu-check: none yet)" in text
    missing = subprocess.run(command[:6] + ["--gpus", "2"], capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode == 2 and "--train-tokens is required" in missing.stdout


# ---------------------------------------------------------------- data preparation


def test_prep_projection_worked_example():
    """12.8 GB in 400 file tasks on 60 cores, worked by hand:
    clean 8 MB/s per core: a task is 12,800 MB / 400 / 8 = 4 s; 400 tasks on 60 cores = 7 rounds → 28 s;
    dedup 100 MB/s: a bucket is 12,800 / 64 / 100 = 2 s; 64 buckets on 60 cores = 2 rounds → 4 s;
    tokenizer: one task, 2 s. Total 34 s. As 60 SLURM array tasks that start in 1.5 s each:
    7 × 5.5 + 2 × 3.5 + 3.5 = 49 s."""
    rates = PrepRates(
        {
            "clean": StageRate("files", mb_per_s=8.0),
            "dedup": StageRate("buckets", 100.0),
            "tokenizer": StageRate("one", fixed_s=2.0),
        },
        measured="by hand",
    )
    local = prep_projection(12_800_000_000, cores=60, num_tasks=400, num_buckets=64, rates=rates)
    assert local["stages_s"] == pytest.approx({"clean": 28.0, "dedup": 4.0, "tokenizer": 2.0})
    assert local["total_s"] == pytest.approx(34.0)
    array = prep_projection(12_800_000_000, cores=60, num_tasks=400, num_buckets=64, task_start_s=1.5, rates=rates)
    assert array["total_s"] == pytest.approx(49.0)
    # one core: every byte through one core, whatever the task count
    assert prep_projection(12_800_000_000, 1, 400, rates=rates)["total_s"] == pytest.approx(1600 + 128 + 2)
    with pytest.raises(ValueError, match="at least 1"):
        prep_projection(1, cores=0, num_tasks=4)


def test_prep_projection_from_a_measured_prepare_run(corpus, prepared, tmp_path):
    """Rates taken from a real 1-worker run's per-stage timings project that same corpus on one
    core to the run's own measured stage seconds; `plan --data` reads the run's input bytes and
    task count (checked against the files on disk and the run's plan.json)."""
    timings = tmp_path / "timings.json"
    out = tmp_path / "out"
    run_pipeline(
        *prepare_args(corpus, out, "--tokenizer", str(prepared / "tokenizer"), "--timings", str(timings), workers=1)
    )
    measured = json.loads(timings.read_text())["stages"]
    on_disk = sum(p.stat().st_size for p in corpus.rglob("*") if p.name.endswith((".csv", ".csv.zst")))
    plan_json = json.loads((out / "plan.json").read_text())
    rates = rates_from_timings(measured, on_disk, measured="this test")
    projected = prep_projection(on_disk, 1, plan_json["num_tasks"], plan_json["num_buckets"], rates=rates)
    assert projected["total_s"] == pytest.approx(sum(measured.values()), rel=1e-9)
    for name, seconds in measured.items():
        assert projected["stages_s"].get(name, 0.0) == pytest.approx(seconds, rel=1e-9, abs=1e-12), name
    # the tokenizer stage is one task: more cores do not shorten it
    on_three = prep_projection(on_disk, 3, plan_json["num_tasks"], plan_json["num_buckets"], rates=rates)
    assert on_three["stages_s"]["tokenizer"] == pytest.approx(measured["tokenizer"], rel=1e-9)

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "plan",
            "--data",
            str(out),
            "--prep-cores",
            "3",
            "--prep-array",
            "2",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    local, array = json.loads(done.stdout)
    assert (local["input_bytes"], local["cores"]) == (on_disk, 3)
    assert (local["tasks"], local["buckets"]) == (plan_json["num_tasks"], plan_json["num_buckets"])
    assert (array["cores"], array["task_start_s"] > 0) == (2, True)
    assert array["total_s"] > local["total_s"]  # fewer cores and a start-up per task


def test_default_task_counts_are_multiples_of_8():
    from pipeline.data.prepare_plan import default_num_tasks, tasks_for_bytes

    mib = 1 << 20
    # 32 MiB a task, at least 8, rounded up to a multiple of 8 (even over 1, 2, 4, 8 workers)
    assert [tasks_for_bytes(n) for n in (1, 256 * mib, 256 * mib + 1, 500_000_000, 15_000_000_000)] == [
        8,
        8,
        16,
        16,
        448,
    ]
    assert default_num_tasks([100 * mib] * 5) == 5  # never more tasks than files
    assert default_num_tasks([10 * mib] * 50) == 16


def test_prep_command_line_from_a_size():
    command = [sys.executable, "-m", "pipeline", "plan", "--corpus-bytes", "15GB", "--prep-cores", "64"]
    done = subprocess.run([*command, "--json"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    (projection,) = json.loads(done.stdout)
    # prepare's default: one task per 32 MiB, 15e9 / 33,554,432 = 447.03 → 448
    assert (projection["input_bytes"], projection["tasks"]) == (15_000_000_000, 448)
    text = subprocess.run(command, capture_output=True, text=True, cwd=ROOT).stdout
    assert "15.00 GB of CSV on 64 core(s)" in text and "re-measured by benchmarks/bench_prepare.py" in text
    bad = subprocess.run(
        [sys.executable, "-m", "pipeline", "plan", "--prep-cores", "4"], capture_output=True, text=True, cwd=ROOT
    )
    assert bad.returncode == 2 and bad.stdout.strip().startswith("plan: --prep-cores/--prep-array need")
