"""Held-out perplexity and next-token accuracy of a Hugging Face causal LM, next to a unigram baseline.

Two sources of tokens:
- packed validation shards of a prepared data directory (`--data OUT`): exactly the blocks the
  trainer evaluates on, scored by the trainer's own `evaluate_blocks`;
- a CSV (`content` column) or text file (documents separated by blank lines), tokenized with
  the model's tokenizer, EOS after every document, cut into blocks like the packer does. The
  incomplete tail block is left out (its size is reported), as packing leaves it out.

The unigram baseline scores the same predicted tokens (every block position after the first)
with a model that ignores context: p(t) = (count(t) + 1) / (N + V). With `--data`, counts come
from the train split — the baseline a model must beat having seen the same data; for a text
file there is no train split, so the evaluated tokens' own frequencies are used (an
optimistic baseline: it has seen the answers). The JSON says which.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.evaluation.heldout import PAD_ID, evaluate_blocks
from pipeline.formats.csv_corpus import FileReport, ReadConfig, read_csv_file
from pipeline.formats.manifest import load_manifest
from pipeline.formats.packed_shards import BlockCutter, PackedBlocks
from pipeline.model.loading import load_model, max_positions
from tokenizer.load import tokenizer_fingerprint

DEFAULT_BLOCK_SIZE = 512


class ProgressBlocks:
    """Blocks (anything with len() and gather()) that advance a progress bar as they are read."""

    def __init__(self, blocks, total: int, description: str, enabled: bool = True):
        self.blocks = blocks
        self.bar = tqdm(total=total, desc=description, unit="block", disable=not enabled)

    def __len__(self) -> int:
        return len(self.blocks)

    def gather(self, indices) -> np.ndarray:
        self.bar.update(len(indices))
        return self.blocks.gather(indices)


class ArrayBlocks:
    """An in-memory (n, block_size) array with the `PackedBlocks` interface."""

    def __init__(self, array: np.ndarray):
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    def gather(self, indices) -> np.ndarray:
        return self.array[list(indices)].astype(np.int64)


# ---------------------------------------------------------------- text files packed on the fly


def read_documents(path: Path, column: str = "content") -> Iterable[str]:
    """CSV (`.csv`, `.csv.zst`): one document per non-empty `column` cell, read by the pipeline's
    own CSV reader (encoding detection, faults counted). Anything else: documents separated by
    blank lines. Texts are scored as written: no cleaning."""
    if path.name.lower().endswith((".csv", ".csv.zst")):
        # A hand-made evaluation file often lacks the final newline: keep that last row.
        report = FileReport(path=str(path))
        config = ReadConfig(text_column=column, require_final_newline=False)
        for document in read_csv_file(str(path), config, report):
            if document.text.strip():
                yield document.text
        if report.skipped_reason is not None:
            raise ValueError(report.error or f"{path}: {report.skipped_reason}")
        return
    text = path.read_text(encoding="utf-8-sig")
    for document in text.replace("\r\n", "\n").split("\n\n"):
        if document.strip():
            yield document.strip("\n")


def pack_text(path: Path, tokenizer, block_size: int, column: str = "content") -> tuple[np.ndarray, dict]:
    """Tokenize documents, append EOS to each, concatenate, cut into full blocks (the packer's cutter)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError(f"{path}: the model's tokenizer has no EOS token to separate documents")
    cutter = BlockCutter(block_size, np.dtype(np.int64))
    blocks: list[np.ndarray] = []
    documents = tokens = 0
    for document in read_documents(path, column):
        ids = tokenizer(document, add_special_tokens=False)["input_ids"] + [eos]
        blocks.append(cutter.push(np.asarray(ids, dtype=np.int64)))
        documents += 1
        tokens += len(ids)
    full = sum(len(b) for b in blocks)
    if full == 0:
        raise ValueError(f"{path}: {tokens} tokens, fewer than one block of {block_size}; pass a smaller --block-size")
    array = np.concatenate(blocks)
    return array, {"documents": documents, "tokens": tokens, "tail_tokens_left_out": len(cutter.pending)}


# ---------------------------------------------------------------- unigram baseline


def predicted_token_counts(blocks, num_blocks: int, vocab_size: int) -> np.ndarray:
    """Counts of the tokens the model is scored on: positions 1.. of each block, no padding."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for start in range(0, num_blocks, 256):
        labels = blocks.gather(range(start, min(start + 256, num_blocks)))[:, 1:].reshape(-1)
        counts += np.bincount(labels[labels != PAD_ID], minlength=vocab_size)[:vocab_size]
    return counts


def unigram_perplexity(reference_counts: np.ndarray, evaluated_counts: np.ndarray) -> float:
    """exp of the mean NLL of the evaluated tokens under add-one-smoothed reference frequencies."""
    probabilities = (reference_counts + 1.0) / (reference_counts.sum() + len(reference_counts))
    nll = -(evaluated_counts * np.log(probabilities)).sum() / evaluated_counts.sum()
    return float(math.exp(nll))


# ---------------------------------------------------------------- the evaluation


@dataclasses.dataclass
class EvaluationRequest:
    model_dir: Path
    data_dir: Path | None = None
    text_file: Path | None = None
    split: str = "validation"
    column: str = "content"
    block_size: int | None = None  # text files only; default min(512, model positions)
    max_blocks: int | None = None  # None: the training run's selection if the export records one, else all
    all_blocks: bool = False  # score every block even when the export records the trainer's selection
    micro_batch_size: int = 8
    device: str = "auto"
    dtype: str = "auto"
    unigram: bool = True
    progress: bool = True


def _fingerprint_or_none(directory: Path) -> str | None:
    """The ids-deciding fingerprint of a tokenizer dir (None when it has no tokenizer.model)."""
    return tokenizer_fingerprint(directory) if (Path(directory) / "tokenizer.model").is_file() else None


def trainer_selection(model_dir: Path) -> dict | None:
    """The validation blocks the training run scored (`validation` in the export's
    export_info.json, copied there from RUN/run.json), or None."""
    try:
        info = json.loads((Path(model_dir) / "export_info.json").read_text())
    except (OSError, ValueError):
        return None
    selection = info.get("validation") if isinstance(info, dict) else None
    return selection if isinstance(selection, dict) and "first_blocks" in selection else None


def select_blocks(request: EvaluationRequest, available: int) -> tuple[int, str]:
    """How many leading blocks to score and a sentence saying which and why — by default the
    same blocks as the trainer's val_ppl, so both numbers mean one thing."""
    if request.max_blocks is not None:
        n = min(available, request.max_blocks)
        return n, f"first {n} of {available} blocks (--max-blocks)"
    selection = trainer_selection(request.model_dir)
    if request.all_blocks or selection is None or request.data_dir is None or request.split != "validation":
        why = "--all-blocks" if request.all_blocks else "no training-run selection recorded in the model"
        return available, f"all {available} blocks ({why})"
    n = min(available, selection["first_blocks"])
    note = "" if selection.get("of") == available else f"; the run's validation split had {selection.get('of')} blocks"
    return n, f"first {n} of {available} validation blocks: the training run's eval selection (eval_max_blocks){note}"


def evaluate(request: EvaluationRequest) -> dict:
    if (request.data_dir is None) == (request.text_file is None):
        raise ValueError("give exactly one of --data OUT or --text FILE")
    started = time.perf_counter()
    model, tokenizer = load_model(request.model_dir, request.device, request.dtype)
    vocab_size = model.config.vocab_size
    result: dict = {"model": str(request.model_dir)}

    if request.data_dir is not None:
        manifest = load_manifest(request.data_dir)
        if manifest.vocab_size > vocab_size:
            raise ValueError(
                f"{request.data_dir}: vocabulary {manifest.vocab_size} > the model's {vocab_size}; wrong model for this data"
            )
        data_tokenizer = _fingerprint_or_none(manifest.tokenizer_dir)
        model_tokenizer = _fingerprint_or_none(Path(request.model_dir))
        if data_tokenizer and model_tokenizer and data_tokenizer != model_tokenizer:
            raise ValueError(
                f"{request.model_dir}/tokenizer.model differs from {manifest.tokenizer_dir}/tokenizer.model: "
                "the data's ids would mean other pieces to this model"
            )
        blocks = PackedBlocks(manifest.shard_paths(request.split))
        block_sources = manifest.block_sources(request.split)
        block_size = manifest.block_size
        result.update({"data": str(request.data_dir), "split": request.split})
    else:
        positions = max_positions(model.config)
        block_size = request.block_size or min(DEFAULT_BLOCK_SIZE, positions or DEFAULT_BLOCK_SIZE)
        if positions is not None and block_size > positions:
            raise ValueError(f"--block-size {block_size} exceeds the model's {positions} positions")
        array, packing = pack_text(Path(request.text_file), tokenizer, block_size, request.column)
        blocks = ArrayBlocks(array)
        block_sources = None
        result.update({"text": str(request.text_file), **packing})

    num_blocks, selection = select_blocks(request, len(blocks))
    device = next(model.parameters()).device
    scored = evaluate_blocks(
        model,
        ProgressBlocks(blocks, num_blocks, "evaluate", request.progress),
        request.micro_batch_size,
        max_blocks=num_blocks,
        device=device,
        block_sources=block_sources,
    )
    result.update(
        {
            "block_size": block_size,
            "blocks": num_blocks,
            "selection": selection,
            "tokens": scored.tokens,
            "loss": scored.loss,
            "perplexity": scored.perplexity,
            "accuracy": scored.accuracy,
            "device": str(device),
            "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        }
    )
    if scored.per_source:
        result["per_source"] = {
            name: {"tokens": r.tokens, "loss": r.loss, "perplexity": r.perplexity, "accuracy": r.accuracy}
            for name, r in scored.per_source.items()
        }
    if request.unigram:
        evaluated = predicted_token_counts(blocks, num_blocks, vocab_size)
        if request.data_dir is not None:
            reference = PackedBlocks(manifest.shard_paths("train")).token_counts(vocab_size)
            source = "train split, add-one smoothing"
        else:
            reference, source = evaluated, "evaluated tokens' own frequencies, add-one smoothing"
        result["unigram"] = {"perplexity": unigram_perplexity(reference, evaluated), "source": source}
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result
