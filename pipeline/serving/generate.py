"""Text continuation with a Hugging Face causal LM: greedy, beam search or sampling.

A prompt is preceded by the EOS id: in pretraining every document follows the previous
document's EOS, so that is the context in which the model learned how documents begin
(`document_start=False` turns this off). Decoding is transformers' `generate`; this module
chooses its arguments, seeds it, keeps prompt + new tokens inside the model's positions
(max_new_tokens is capped at positions - 1; a long prompt keeps its last tokens) and cuts
each returned sequence at its first EOS.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch

from pipeline.model.loading import max_positions


@dataclasses.dataclass
class GenerationSettings:
    strategy: Literal["greedy", "sample", "beam"] = "sample"
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_k: int = 0  # 0: no top-k filter
    top_p: float = 1.0  # 1.0: no nucleus filter
    repetition_penalty: float = 1.0
    num_beams: int = 4  # beam strategy only
    num_sequences: int = 1
    seed: int | None = None
    document_start: bool = True

    def check(self) -> None:
        if self.strategy not in ("greedy", "sample", "beam"):
            raise ValueError(f"strategy: expected greedy, sample or beam, got {self.strategy!r}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens: must be >= 1, got {self.max_new_tokens}")
        if self.temperature <= 0:
            raise ValueError(f"temperature: must be > 0 (use strategy greedy for argmax), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p: must be in (0, 1], got {self.top_p}")
        if self.top_k < 0 or self.repetition_penalty <= 0 or self.num_sequences < 1:
            raise ValueError("top_k must be >= 0, repetition_penalty > 0, num_sequences >= 1")
        if self.strategy == "greedy" and self.num_sequences > 1:
            raise ValueError("num_sequences: greedy decoding has only one answer; use sample or beam")
        if self.strategy == "beam" and self.num_sequences > self.num_beams:
            raise ValueError(f"num_sequences ({self.num_sequences}) must be <= num_beams ({self.num_beams})")

    @property
    def streamable(self) -> bool:
        """transformers' streamers follow exactly one sequence; beams reorder until the end."""
        return self.strategy != "beam" and self.num_sequences == 1


@dataclasses.dataclass
class Continuation:
    text: str  # the new text only, special tokens removed
    token_ids: list[int]  # new tokens, up to and including the first EOS
    stopped_at_eos: bool


def generate_kwargs(settings: GenerationSettings, tokenizer) -> dict:
    kwargs = {
        "max_new_tokens": settings.max_new_tokens,
        "repetition_penalty": settings.repetition_penalty,
        "num_return_sequences": settings.num_sequences,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    }
    if settings.strategy == "sample":
        kwargs.update(
            do_sample=True, temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p, num_beams=1
        )
    elif settings.strategy == "beam":
        kwargs.update(do_sample=False, num_beams=settings.num_beams, early_stopping=True)
    else:
        kwargs.update(do_sample=False, num_beams=1)
    return kwargs


def prompt_ids(prompt: str, tokenizer, model, settings: GenerationSettings) -> torch.Tensor:
    """Token ids of the prompt, left-truncated so prompt + new tokens fit the model's positions."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
    if settings.document_start or not ids:
        ids = [tokenizer.eos_token_id] + ids
    positions = max_positions(model.config)
    if positions is not None:
        ids = ids[-(positions - settings.max_new_tokens) :]
    return torch.tensor([ids], dtype=torch.long, device=next(model.parameters()).device)


def cut_at_eos(ids: list[int], eos_id: int) -> tuple[list[int], bool]:
    if eos_id in ids:
        return ids[: ids.index(eos_id) + 1], True
    return ids, False


@torch.no_grad()
def generate(model, tokenizer, prompt: str, settings: GenerationSettings, streamer=None) -> list[Continuation]:
    """Continuations of `prompt`; `streamer` (a transformers streamer) sees tokens as they come."""
    from transformers import set_seed

    settings.check()
    positions = max_positions(model.config)
    if positions is not None and settings.max_new_tokens >= positions:
        # at least one prompt token must fit; longer requests are cut to the model's window
        settings = dataclasses.replace(settings, max_new_tokens=positions - 1)
    if streamer is not None and not settings.streamable:
        raise ValueError("streaming needs one sequence and no beam search")
    if settings.seed is not None:
        set_seed(settings.seed)
    inputs = prompt_ids(prompt, tokenizer, model, settings)
    output = model.generate(
        input_ids=inputs,
        attention_mask=torch.ones_like(inputs),
        streamer=streamer,
        **generate_kwargs(settings, tokenizer),
    )
    continuations = []
    for row in output[:, inputs.shape[1] :].tolist():
        ids, stopped = cut_at_eos(row, tokenizer.eos_token_id)
        continuations.append(Continuation(tokenizer.decode(ids, skip_special_tokens=True), ids, stopped))
    return continuations
