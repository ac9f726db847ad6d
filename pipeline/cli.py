"""`zh-pretrain COMMAND …` (the same as `python -m pipeline COMMAND …`): every job of the product.

Each command is a module in pipeline/commands with `add_arguments(parser)` and `run(args) -> int`.
Modules are imported only when their command runs, so `--help` stays fast and torch is never
loaded for data preparation. Exit codes:
  0   done
  1   `status`: some task pending; `verify`: some file differs from the manifest (each named)
  2   a clear error: bad input, config or state, a task that could not write (disk full), …
  3   `task`/`prepare`: an input file changed since `init` (plan.json) — re-init with --force
  4   `task --no-wait`: the same task is running elsewhere (its lock is held)
  75  stopped by a signal with a checkpoint saved (train)
  anything else: a bug
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pipeline.core.typed_config import ConfigError

COMMANDS = {
    # name: one-line help (the module is pipeline.commands.<name with - as _>)
    "generate-corpus": "write a synthetic, messy Chinese CSV corpus tree (the demo's input)",
    "prepare": "run every data stage locally: read → clean → dedup → split → tokenizer → pack",
    "init": "freeze inputs, config and task counts into OUT/plan.json (before SLURM arrays)",
    "tasks": "print the number of tasks of a stage (for sbatch --array)",
    "task": "run exactly one task of one stage (for SLURM array jobs)",
    "status": "show done/pending tasks of each stage of an output directory",
    "verify": "re-hash every shard and document file of a prepared directory against its manifest",
    "report": "figures + report.md of prepared data (--output OUT) or of a training run (--run RUN)",
    "plan": "estimate steps, time, memory per GPU per ZeRO stage and disk of a training run",
    "train": "pretrain with DeepSpeed in this process (one rank; `deepspeed launch/pretrain.py` starts many)",
    "export": "write a run's checkpoint as a Hugging Face model directory",
    "evaluate": "held-out perplexity and next-token accuracy of an exported model, as JSON",
    "generate": "continue prompts with an exported model (greedy, sampling, beam; interactive)",
    "chat": "serve a local chat page for an exported model",
}
PROG = "zh-pretrain"


def _module_name(command: str) -> str:
    return "pipeline.commands." + command.replace("-", "_")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text)  # arguments: added lazily, see main
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        build_parser().parse_args(argv)  # prints usage or the unknown-command error, exits 2
        return 2
    module = importlib.import_module(_module_name(argv[0]))
    parser = argparse.ArgumentParser(
        prog=f"{PROG} {argv[0]}",
        description=module.__doc__ or COMMANDS[argv[0]],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    from pipeline.core.atomic import PublishError
    from pipeline.data.executor import TaskBusy
    from pipeline.data.prepare_plan import InputsChanged, PlanError
    from pipeline.formats.manifest import ManifestError

    try:
        return int(module.run(args) or 0)
    except (ConfigError, PlanError, ManifestError, PublishError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3 if isinstance(exc, InputsChanged) else 4 if isinstance(exc, TaskBusy) else 2
    except ValueError as exc:
        from tokenizer.load import TokenizerDirError
        from tokenizer.train import TokenizerTrainingError

        if not isinstance(exc, (TokenizerDirError, TokenizerTrainingError)):
            raise
        print(f"error: {exc}", file=sys.stderr)  # a sample too small for the vocabulary, a bad --tokenizer
        return 2
