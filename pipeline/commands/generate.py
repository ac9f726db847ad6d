"""Continue a prompt with a trained model, streaming tokens to the terminal.

python -m pipeline generate --model RUN/hf --prompt "今天天气" --strategy sample --top-p 0.9 --seed 1
python -m pipeline generate --model RUN/hf --strategy beam --num-beams 4 --num-sequences 2 --prompt "中国"
python -m pipeline generate --model RUN/hf --interactive          # a prompt loop; empty line or Ctrl-D quits
"""

from __future__ import annotations

import argparse
import sys

from pipeline.commands.model_args import add_model_arguments
from pipeline.model.loading import load_model
from pipeline.serving.generate import GenerationSettings, generate


def add_generation_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = GenerationSettings()
    parser.add_argument("--strategy", choices=["greedy", "sample", "beam"], default=defaults.strategy)
    parser.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    parser.add_argument("--temperature", type=float, default=defaults.temperature)
    parser.add_argument(
        "--top-k", type=int, default=defaults.top_k, help="sample among the k likeliest tokens (0: all)"
    )
    parser.add_argument("--top-p", type=float, default=defaults.top_p, help="nucleus sampling mass (1.0: off)")
    parser.add_argument("--repetition-penalty", type=float, default=defaults.repetition_penalty)
    parser.add_argument("--num-beams", type=int, default=defaults.num_beams)
    parser.add_argument("--num-sequences", type=int, default=defaults.num_sequences)
    parser.add_argument("--seed", type=int, help="makes sampling repeatable")
    parser.add_argument(
        "--no-document-start", action="store_true", help="do not put EOS (a document boundary) before the prompt"
    )


def settings_from_args(args) -> GenerationSettings:
    settings = GenerationSettings(
        strategy=args.strategy,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        num_beams=args.num_beams,
        num_sequences=args.num_sequences,
        seed=args.seed,
        document_start=not args.no_document_start,
    )
    settings.check()
    return settings


def answer(model, tokenizer, prompt: str, settings: GenerationSettings) -> None:
    from transformers import TextStreamer

    if settings.streamable:
        print(prompt, end="", flush=True)
        streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        generate(model, tokenizer, prompt, settings, streamer=streamer)  # the streamer prints and ends the line
        return
    for number, continuation in enumerate(generate(model, tokenizer, prompt, settings), 1):
        print(f"[{number}] {prompt}{continuation.text}", flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--prompt", action="append", default=[], help="a prompt (repeatable)")
    parser.add_argument("--interactive", action="store_true", help="read prompts from the terminal until an empty line")
    add_generation_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if not args.prompt and not args.interactive:
        print("generate: give --prompt TEXT or --interactive", file=sys.stderr)
        return 2
    try:
        settings = settings_from_args(args)
        model, tokenizer = load_model(args.model, args.device, args.dtype)
    except (ValueError, FileNotFoundError) as exc:
        print(f"generate: {exc}", file=sys.stderr)
        return 2
    for prompt in args.prompt:
        answer(model, tokenizer, prompt, settings)
    while args.interactive:
        try:
            prompt = input("prompt> ")
        except EOFError:
            break
        if not prompt.strip():
            break
        answer(model, tokenizer, prompt, settings)
    return 0
