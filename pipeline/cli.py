"""`python -m pipeline COMMAND …` — one entry point, one module per command.

Each command module defines `add_arguments(parser)` and `run(args) -> int`; modules are
imported only when their command runs, so `--help` stays fast and torch is never loaded
for data preparation.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .configfile import ConfigError

COMMANDS = {
    # name: (module, one-line help)
    "generate-corpus": ("pipeline.corpus_gen", "write a synthetic, messy Chinese CSV corpus tree"),
    "prepare": ("pipeline.commands.prepare", "run every data stage locally: read → … → packed Arrow shards"),
    "init": ("pipeline.commands.init", "freeze inputs, config and task counts into OUT/plan.json (before SLURM arrays)"),
    "tasks": ("pipeline.commands.tasks", "print the number of tasks of a stage (for sbatch --array)"),
    "task": ("pipeline.commands.task", "run exactly one task of one stage (for SLURM array jobs)"),
    "status": ("pipeline.commands.status", "show done/pending tasks of each stage of an output directory"),
    "report": ("pipeline.report_plots", "render OUT/report.json as PNG figures and OUT/report.md"),
    "plan": ("pipeline.run_plan", "estimate steps, time, memory per GPU per ZeRO stage and disk of a training run"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(_module=module_name)
        # Arguments are added lazily only for the chosen command (see main).
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        module = importlib.import_module(COMMANDS[argv[0]][0])
        parser = argparse.ArgumentParser(prog=f"python -m pipeline {argv[0]}", description=COMMANDS[argv[0]][1])
        module.add_arguments(parser)
        args = parser.parse_args(argv[1:])
        from .manifest import ManifestError
        from .plan import PlanError

        try:
            return int(module.run(args) or 0)
        except (ConfigError, PlanError, ManifestError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    build_parser().parse_args(argv)
    return 2
