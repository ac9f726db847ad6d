"""`python -m pipeline generate-corpus`: a realistic, messy, synthetic Chinese CSV corpus tree.

The tree looks like the real corpus (`OUTPUT/<folder>/part-NNNNN.csv`, a `content` column among
others) and carries the damage real corpora have, so every stage of data preparation can be
tested and demonstrated on it:

* text: Simplified Chinese from a small template grammar (`pipeline.tools.corpus_vocab`), one row being
  a sentence, a paragraph or a multi-paragraph document, so a tiny model can learn something;
* damaged rows at realistic rates: HTML remnants and entities, ANSI escapes, CJK spaced out by
  line wrapping, exact duplicates within and across files, English-only rows, very short rows,
  whole rows in Traditional characters, emoji, full-width Latin letters and digits, navigation
  crumbs, repetitive rows, empty cells;
* damaged shards, each exactly once and named after its damage: GBK encoding, UTF-8 with BOM,
  zstandard (`.csv.zst`), CRLF line ends, multi-line quoted fields with doubled quotes, an empty
  file, a file without the `content` column, a file truncated inside a quoted multi-line field.

Randomness comes from two generators seeded from `seed` alone: `random.Random`, of which only
`random()` is used (its sequence is guaranteed across Python versions), for row-level decisions,
and numpy's PCG64 for the grammar's bulk word draws; so the same (size, seed, files) gives a
byte-identical tree. `OUTPUT/generation.json` records what was injected where; it is written
last, so its presence means the tree is complete.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import functools
import io
import itertools
import operator
import random
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import zstandard

from pipeline.core.atomic import write_atomically, write_json_atomically

from . import corpus_vocab as vocab

GENERATOR_VERSION = 1
MIN_FILES = 10  # the eight damaged shards plus at least two ordinary ones
MIN_BYTES_PER_FILE = 4_000
# Word frequencies fall as rank**-0.8 inside each slot: Zipf-like but varied enough to read.
ZIPF_EXPONENT = 0.8
# Inner grammar symbols are pre-expanded into pools of this many strings (see Slot).
POOL_SIZE = 4096
DRAW_BATCH = 4096
FRESH_UNITS = {"sentence", "poem"}

# Per-row probabilities. Replacements put something else in place of a Chinese text;
# modifiers damage a Chinese text (at most one per row).
REPLACEMENT_RATES = {
    "empty": 0.005,
    "short": 0.02,
    "english": 0.01,
    "navigation": 0.007,
    "repetitive": 0.007,
    "duplicate_within_file": 0.01,
    "duplicate_across_files": 0.02,
}
MODIFIER_RATES = {
    "html": 0.03,
    "ansi": 0.005,
    "wrapped_spaces": 0.01,
    "traditional": 0.015,
    "emoji": 0.015,
    "fullwidth": 0.01,
}
# Row shapes: one or two sentences, a paragraph, a document of several paragraphs.
SHAPE_WEIGHTS = {"sentence": 0.35, "paragraph": 0.5, "document": 0.15}

DAMAGED_SHARDS = ("gbk", "bom", "zst", "crlf", "multiline", "empty", "no_content", "truncated")

# Folder name → topic weights (the real corpus groups files by source).
FOLDERS: dict[str, dict[str, float]] = {
    "news_2019": {"news": 6, "daily": 1, "science": 1},
    "science_tech": {"science": 6, "news": 2, "daily": 1},
    "history_wiki": {"history": 6, "poetry": 1, "science": 1},
    "daily_forum": {"daily": 6, "news": 1},
    "poetry": {"poetry": 5, "history": 2},
    "news_2021": {"news": 5, "science": 2, "history": 1},
    "baike": {"science": 2, "history": 2, "daily": 1, "news": 1},
    "weibo": {"daily": 4, "news": 2, "poetry": 1},
    "blogs": {"daily": 3, "science": 2, "history": 1},
    "qa_site": {"daily": 3, "science": 3},
    "local_news": {"news": 6, "daily": 2},
    "classics": {"poetry": 3, "history": 4},
}

# Column layouts; the text column is not always first. The no-content shard names it `text`.
SCHEMAS: list[tuple[str, ...]] = [
    ("id", "title", "content", "url"),
    ("content", "source", "date"),
    ("id", "content"),
    ("title", "author", "date", "content", "tags"),
]
NO_CONTENT_SCHEMA = ("id", "title", "text", "url")

TOPIC_TAGS = {
    "news": "新闻;国内",
    "science": "科技;科学",
    "history": "历史;文化",
    "daily": "生活;日常",
    "poetry": "诗词;文学",
}

_SLOT = re.compile(r"\{(\w+)\}")
_FULLWIDTH = {code: code + 0xFEE0 for code in range(0x21, 0x7F)}  # ASCII '!'..'~' → U+FF01..
_TRADITIONAL = str.maketrans(vocab.SIMPLIFIED_CHARS, vocab.TRADITIONAL_CHARS)


class Slot:
    """One grammar symbol: alternatives (strings, or templates of literals and slots) with
    Zipf weights by rank; `slot.next()` returns one expansion.

    Speed comes from three things: draws are made DRAW_BATCH at a time by numpy; `next` is
    a generator's `__next__` (much cheaper than a method with a buffer check); and every inner
    symbol (a name, a date, a clause) is expanded POOL_SIZE times once and then drawn from that
    pool, so a sentence costs one join of terminal draws instead of a recursion. Only the units
    rows are built from (`FRESH_UNITS`) are expanded afresh each time, which keeps rows unique.
    """

    def __init__(self, name: str, alternatives: list[str], draws_rng: np.random.Generator, grammar: Grammar):
        self.name = name
        self._draws_rng = draws_rng
        compiled = []
        for text in alternatives:
            pieces = _SLOT.split(text)  # literal, slot name, literal, slot name, ...
            if len(pieces) == 1:
                compiled.append(text)
                continue
            # A template holds its sub-slots' `next` functions; the grammar has no cycles.
            parts = [grammar.slot(piece).next if index % 2 else piece for index, piece in enumerate(pieces)]
            compiled.append(tuple(part for part in parts if part != ""))
        weights = [rank**-ZIPF_EXPONENT for rank in range(1, len(compiled) + 1)]
        if all(type(choice) is str for choice in compiled):
            self.next = self._draws(compiled, weights).__next__
        elif name in FRESH_UNITS:
            self.next = functools.partial(self._expand, self._draws(compiled, weights).__next__)
        else:
            templates = self._draws(compiled, weights).__next__
            pool = [self._expand(templates) for _ in range(POOL_SIZE)]
            self.next = self._draws(pool, None).__next__  # the pool already has the Zipf frequencies

    def _draws(self, choices: list, weights: list[float] | None) -> Iterator:
        """Endless draws from `choices`, made DRAW_BATCH at a time with numpy."""
        cumulative = None if weights is None else np.cumsum(weights)
        while True:
            if cumulative is None:
                indices = self._draws_rng.integers(0, len(choices), DRAW_BATCH)
            else:
                indices = np.searchsorted(cumulative, self._draws_rng.random(DRAW_BATCH) * cumulative[-1], side="right")
            yield from operator.itemgetter(*indices.tolist())(choices)

    @staticmethod
    def _expand(templates: Callable) -> str:
        choice = templates()
        if type(choice) is str:
            return choice
        return "".join([part if type(part) is str else part() for part in choice])


class Grammar:
    """The slots of one topic: the common slots overridden by the topic's own."""

    def __init__(self, rules: dict[str, list[str]], draws_rng: np.random.Generator):
        self._rules = rules
        self._draws_rng = draws_rng
        self._slots: dict[str, Slot] = {}

    def slot(self, name: str) -> Slot:
        if name not in self._slots:
            if name not in self._rules:
                raise KeyError(f"grammar has no slot {{{name}}}")
            self._slots[name] = Slot(name, self._rules[name], self._draws_rng, self)
        return self._slots[name]

    def expand(self, name: str) -> str:
        return self.slot(name).next()


def encodable_as_gbk(text: str) -> bool:
    try:
        text.encode("gbk")
        return True
    except UnicodeEncodeError:
        return False


class Mixture:
    """Draws one kind with the given probabilities; with probabilities summing to less than 1,
    the rest of the time none (None); `normalize` scales weights to sum to 1."""

    def __init__(self, rates: dict[str, float], normalize: bool = False):
        total = sum(rates.values()) if normalize else 1.0
        self.kinds = list(rates)
        self.cumulative = list(itertools.accumulate(rate / total for rate in rates.values()))
        if normalize:
            self.cumulative[-1] = 1.0  # no rounding gap at the end

    def pick(self, rng: random.Random) -> str | None:
        index = bisect.bisect(self.cumulative, rng.random())
        return self.kinds[index] if index < len(self.kinds) else None


REPLACEMENTS = Mixture(REPLACEMENT_RATES)
MODIFIERS = Mixture(MODIFIER_RATES)
SHAPES = Mixture(SHAPE_WEIGHTS, normalize=True)
TOPIC_MIXTURES = {folder: Mixture(weights, normalize=True) for folder, weights in FOLDERS.items()}


def randint(rng: random.Random, low: int, high: int) -> int:
    """Uniform in [low, high], from random() only (randrange's algorithm may change)."""
    return low + int(rng.random() * (high - low + 1))


class TextMaker:
    """Chinese rows of the three shapes, per topic."""

    def __init__(self, rng: random.Random, draws_rng: np.random.Generator):
        self.rng = rng
        topics = [*vocab.TOPICS, "poetry"]
        self.grammars = {topic: Grammar(vocab.topic_rules(topic), draws_rng) for topic in topics}
        self.english = Grammar(vocab.ENGLISH, draws_rng)

    def sentences(self, topic: str, count: int) -> str:
        grammar = self.grammars[topic]
        unit = "poem" if topic == "poetry" else "sentence"
        joiner = "\n" if topic == "poetry" else ""
        return joiner.join([grammar.expand(unit) for _ in range(count)])

    def text(self, topic: str, shape: str) -> str:
        rng = self.rng
        if shape == "sentence":
            return self.sentences(topic, 1 + (rng.random() < 0.4))
        if shape == "paragraph":
            return self.sentences(topic, randint(rng, 3, 8) if topic != "poetry" else randint(rng, 1, 3))
        return "\n".join(self.sentences(topic, randint(rng, 2, 6)) for _ in range(randint(rng, 2, 5)))

    def headline(self, topic: str) -> str:
        return self.grammars[topic].expand("headline")


class Damage:
    """The row-level damage; each method takes and returns the text of one cell."""

    def __init__(self, rng: random.Random, maker: TextMaker):
        self.rng = rng
        self.maker = maker

    def pick(self, items: list[str]) -> str:
        return items[int(self.rng.random() * len(items))]

    def html(self, text: str) -> str:
        rng = self.rng
        kind = int(rng.random() * 6)
        if kind == 0:
            return f"<p>{text}</p>"
        if kind == 1:
            return text.replace("\n", "<br/>") if "\n" in text else text.replace("。", "。<br/>", 1) + "<br/>"
        if kind == 2 and "“" in text:
            return text.replace("“", "&#8220;").replace("”", "&#8221;")
        if kind == 3:
            return f'<div class="content">&nbsp;&nbsp;{text}</div>'
        if kind == 4:
            site = self.pick(vocab.HTML_SITES)
            return f'{text}<a href="http://{site}/{randint(rng, 100, 99999)}.html">阅读原文 &gt;&gt;</a>'
        return f'<span style="color:#333">{text.replace("和", "&amp;", 1)}</span>&nbsp;'

    def ansi(self, text: str) -> str:
        code = self.pick(["31", "32", "1;33", "0;36", "1"])
        if self.rng.random() < 0.5:
            return f"\x1b[{code}m{text}\x1b[0m"
        middle = len(text) // 2
        return f"{text[:middle]}\x1b[{code}m{text[middle:]}\x1b[0m\x1b[K"

    def wrapped_spaces(self, text: str) -> str:
        length = randint(self.rng, 6, 40)
        start = int(self.rng.random() * max(1, len(text) - length))
        return text[:start] + " ".join(text[start : start + length]) + text[start + length :]

    def traditional(self, text: str) -> str:
        return text.translate(_TRADITIONAL)

    def emoji(self, text: str) -> str:
        if self.rng.random() < 0.5:
            return text + self.pick(vocab.EMOJI) * randint(self.rng, 1, 3)
        return text.replace("。", "。" + self.pick(vocab.EMOJI), randint(self.rng, 1, 3))

    def fullwidth(self, text: str) -> str:
        if self.rng.random() < 0.5 and any(char.isdigit() for char in text):
            return text.translate({code: code + 0xFEE0 for code in range(0x30, 0x3A)})
        return self.pick(vocab.FULLWIDTH_TOKENS).translate(_FULLWIDTH) + "：" + text

    # Replacements -------------------------------------------------------------------------
    def empty(self) -> str:
        return ""

    def short(self) -> str:
        return self.pick(vocab.SHORT_ROWS)

    def english(self) -> str:
        return " ".join(self.maker.english.expand("sentence") for _ in range(randint(self.rng, 1, 3)))

    def navigation(self) -> str:
        return self.pick(vocab.NAVIGATION)

    def repetitive(self, topic: str) -> str:
        if self.rng.random() < 0.5:
            return self.pick(vocab.REPEATED_CHARS) * randint(self.rng, 8, 60)
        line = self.maker.sentences(topic, 1)
        return self.pick(["\n", "", " "]).join([line] * randint(self.rng, 3, 10))


class CsvShardBuilder:
    """Streams CSV rows, batch by batch, into an open file and counts the bytes written (after
    encoding and, for the zstd shard, after compression, so the caller can stop at a budget of
    bytes on disk). Memory stays one batch, whatever the file size."""

    def __init__(self, handle, columns: tuple[str, ...], encoding: str, crlf: bool, compress: bool, bom: bool):
        self.handle = handle
        self.encoding = encoding
        self.crlf = crlf
        self.size = 0  # bytes in the file
        self.uncompressed_size = 0
        self._compressor = zstandard.ZstdCompressor(level=9).compressobj() if compress else None
        if bom:
            self._append_raw(b"\xef\xbb\xbf")
        self.write_rows([columns])

    def _append_raw(self, data: bytes) -> None:
        self.uncompressed_size += len(data)
        if self._compressor is not None:
            # Flushing each batch's block makes the compressed size known as we go.
            data = self._compressor.compress(data) + self._compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        self.handle.write(data)
        self.size += len(data)

    def csv_text(self, rows: list) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n" if self.crlf else "\n")
        if self.crlf:  # a Windows file: every newline, also inside quoted fields, is CRLF
            rows = [[cell.replace("\n", "\r\n") if isinstance(cell, str) else cell for cell in row] for row in rows]
        writer.writerows(rows)
        return buffer.getvalue()

    def write_rows(self, rows: list) -> None:
        self._append_raw(self.csv_text(rows).encode(self.encoding))

    def append_text(self, text: str) -> None:
        self._append_raw(text.encode(self.encoding))

    def finish(self) -> None:
        if self._compressor is not None:
            tail = self._compressor.flush()  # ends the zstd frame
            self.handle.write(tail)
            self.size += len(tail)


class CorpusGenerator:
    def __init__(self, output: Path, size_bytes: int, seed: int, files: int):
        self.output = output
        self.size_bytes = size_bytes
        self.seed = seed
        self.files = files
        # Row-level decisions come from `rng`; the grammar's bulk word draws from `draws_rng`.
        self.rng = random.Random(f"zh-corpus-{seed}")
        self.maker = TextMaker(self.rng, np.random.default_rng([seed, 1]))
        self.damage = Damage(self.rng, self.maker)
        self.cross_file_pool: list[str] = []  # texts of earlier files, sources of cross-file duplicates
        self.totals: dict[str, int] = {kind: 0 for kind in [*REPLACEMENT_RATES, *MODIFIER_RATES]}

    def plan(self) -> list[dict]:
        """Which file goes where, with which columns and which shard damage."""
        num_folders = min(len(FOLDERS), max(3, self.files // 5))
        folders = list(FOLDERS)[:num_folders]
        special = list(range(1, self.files))  # file 0 stays ordinary: the first source of duplicates
        for i in range(len(special) - 1, 0, -1):  # Fisher-Yates from random() (shuffle's draws may change)
            j = int(self.rng.random() * (i + 1))
            special[i], special[j] = special[j], special[i]
        damage_of = {index: kind for index, kind in zip(special, DAMAGED_SHARDS)}
        plans, counters = [], {folder: 0 for folder in folders}
        for index in range(self.files):
            folder = folders[index * num_folders // self.files]
            number = counters[folder]
            counters[folder] += 1
            damage = damage_of.get(index)
            suffix = "" if damage in (None, "zst") else "-" + damage.replace("_", "")
            name = f"part-{number:05d}{suffix}.csv" + (".zst" if damage == "zst" else "")
            columns = NO_CONTENT_SCHEMA if damage == "no_content" else SCHEMAS[int(self.rng.random() * len(SCHEMAS))]
            plans.append({"path": f"{folder}/{name}", "folder": folder, "columns": columns, "damage": damage})
        return plans

    def text_row(self, topic: str, shard_damage: str | None, file_texts: list[str], counts: dict[str, int]) -> str:
        """One `content` cell, damaged at the configured rates."""
        rng = self.rng
        kind = REPLACEMENTS.pick(rng)
        if kind == "duplicate_within_file" and not file_texts:
            kind = None
        if kind == "duplicate_across_files" and not self.cross_file_pool:
            kind = None
        if kind in ("duplicate_within_file", "duplicate_across_files"):
            source = file_texts if kind == "duplicate_within_file" else self.cross_file_pool
            copy = source[int(rng.random() * len(source))]
            if shard_damage != "gbk" or encodable_as_gbk(copy):  # GBK has no emoji
                counts[kind] += 1
                return copy
            kind = None
        if kind is not None:
            counts[kind] += 1
            if kind == "repetitive":
                return self.damage.repetitive(topic)
            return getattr(self.damage, kind)()

        if shard_damage == "multiline":
            text = self.multiline_text(topic)
        else:
            text = self.maker.text(topic, SHAPES.pick(rng))
        kind = MODIFIERS.pick(rng)
        if kind is not None and not (kind == "emoji" and shard_damage == "gbk"):  # GBK has no emoji
            counts[kind] += 1
            text = getattr(self.damage, kind)(text)
        file_texts.append(text)
        return text

    def multiline_text(self, topic: str) -> str:
        """A document with newlines and ASCII double quotes (written doubled by the CSV writer)."""
        text = self.maker.text(topic, "document")
        grammar = self.maker.grammars["news" if topic == "poetry" else topic]
        quote = grammar.expand("clause")
        return f'{text}\n{grammar.expand("name")}说："{quote}。"他还说："{grammar.expand("clause")}。"'

    def other_cells(self, columns, topic: str, plan: dict, row_number: int) -> dict[str, str]:
        cells = {}
        for column in columns:
            if column == "id":
                cells[column] = str(row_number + 1)
            elif column == "title":
                cells[column] = self.maker.headline(topic)
            elif column == "url":
                cells[column] = f"https://www.example.com/{plan['folder']}/{row_number + 1}.html"
            elif column == "source":
                cells[column] = self.maker.grammars["news"].expand("media")
            elif column == "date":
                cells[column] = (
                    f"20{randint(self.rng, 10, 23)}-{randint(self.rng, 1, 12):02d}-{randint(self.rng, 1, 28):02d}"
                )
            elif column == "author":
                cells[column] = self.maker.grammars["daily"].expand("name")
            elif column == "tags":
                cells[column] = TOPIC_TAGS[topic]
        return cells

    def write_shard(self, plan: dict, budget: int) -> dict:
        damage = plan["damage"]
        columns = plan["columns"]
        text_column = "text" if damage == "no_content" else "content"
        counts = {kind: 0 for kind in self.totals}
        record = {"path": plan["path"], "damage": damage, "columns": list(columns), "rows": 0}
        path = self.output / plan["path"]
        if damage == "empty":
            with write_atomically(path) as handle:
                pass
            return {**record, "columns": [], "bytes": 0, "encoding": None, "counts": counts}

        with write_atomically(path) as handle:
            writer = CsvShardBuilder(
                handle,
                columns,
                encoding="gbk" if damage == "gbk" else "utf-8",
                crlf=damage == "crlf",
                compress=damage == "zst",
                bom=damage == "bom",
            )
            topics = TOPIC_MIXTURES[plan["folder"]]
            file_texts: list[str] = []
            rows_written = 0
            batch = 8
            header_size = writer.size
            while writer.size < budget:
                rows = []
                for _ in range(batch):
                    topic = topics.pick(self.rng)
                    cells = self.other_cells(columns, topic, plan, rows_written + len(rows))
                    cells[text_column] = self.text_row(topic, damage, file_texts, counts)
                    rows.append([cells[column] for column in columns])
                writer.write_rows(rows)
                rows_written += len(rows)
                # Fill half of what is left each time: the overshoot stays about one row.
                per_row = max(1.0, (writer.size - header_size) / rows_written)
                batch = max(1, min(512, int(0.5 * (budget - writer.size) / per_row)))
            if damage == "truncated":
                self.append_truncated_row(writer, columns, plan, rows_written)
            writer.finish()

        if damage != "no_content":
            # A spread of this file's texts can reappear, verbatim, in later files.
            step = max(1, len(file_texts) // 200)
            self.cross_file_pool.extend(file_texts[::step])
        for kind, count in counts.items():
            self.totals[kind] += count
        encoding = {"gbk": "gbk", "bom": "utf-8-sig"}.get(damage, "utf-8")
        record.update(rows=rows_written, bytes=writer.size, encoding=encoding, text_column=text_column, counts=counts)
        if damage == "zst":
            record["uncompressed_bytes"] = writer.uncompressed_size
        if damage == "truncated":
            record["truncated_rows"] = 1  # the cut row after `rows` complete ones
        return record

    def append_truncated_row(self, writer: CsvShardBuilder, columns, plan: dict, row_number: int) -> None:
        """Append a row whose quoted multi-line `content` is cut after its first newline, so the
        file ends inside an open quote (no quotes inside it, so none can close it early)."""
        cells = self.other_cells(columns, "news", plan, row_number)
        cells["content"] = self.maker.text("news", "document").replace('"', "")
        line = writer.csv_text([[cells[column] for column in columns]])
        newline = line.index("\n")
        opening = line.rindex('"', 0, newline)
        assert line.count('"', 0, opening) % 2 == 0, "the cut must fall inside the content field"
        writer.append_text(line[: newline + 1 + randint(self.rng, 1, 8)])

    def generate(self) -> dict:
        started = time.perf_counter()
        plans = self.plan()
        self.refuse_foreign_files(plans)
        budget = self.size_bytes // (self.files - 1)  # the empty shard takes no bytes
        records = [self.write_shard(plan, budget) for plan in plans]
        seconds = time.perf_counter() - started
        summary = {
            "generator_version": GENERATOR_VERSION,
            "seed": self.seed,
            "size_bytes_requested": self.size_bytes,
            "files_requested": self.files,
            "bytes_written": sum(record["bytes"] for record in records),
            "rows_written": sum(record["rows"] for record in records),
            "rows_with_content_column": sum(r["rows"] for r in records if r.get("text_column") == "content"),
            "damaged_shards": {record["damage"]: record["path"] for record in records if record["damage"]},
            "damage_counts": dict(self.totals),
            "duplicates_planted": self.totals["duplicate_within_file"] + self.totals["duplicate_across_files"],
            "rates": {"replacements": REPLACEMENT_RATES, "modifiers": MODIFIER_RATES},
            "files": records,
        }
        write_json_atomically(self.output / "generation.json", summary)
        # Kept out of generation.json: the file must be byte-identical from run to run.
        summary["seconds"] = seconds
        return summary

    def refuse_foreign_files(self, plans: list[dict]) -> None:
        """Never mix trees: OUTPUT may only hold files that this generation rewrites."""
        if not self.output.exists():
            return
        ours = {plan["path"] for plan in plans} | {"generation.json"}
        foreign = sorted(
            str(path.relative_to(self.output))
            for path in self.output.rglob("*")
            if path.is_file() and str(path.relative_to(self.output)) not in ours
        )
        if foreign:
            raise ValueError(
                f"{self.output} already holds files this generation would not write "
                f"(e.g. {foreign[0]}, {len(foreign)} in all); use an empty or new directory"
            )


def default_files(size_bytes: int) -> int:
    """About 2 MB per file (the real corpus has thousands of ~5 MB files), at least 16 so that
    ordinary files outnumber the eight damaged ones, and as many as the size allows."""
    return max(MIN_FILES, min(16, size_bytes // MIN_BYTES_PER_FILE), min(5000, round(size_bytes / 2_000_000)))


def generate_corpus(output: Path, size_bytes: int, seed: int = 0, files: int | None = None) -> dict:
    """Write a realistic synthetic corpus tree OUTPUT/<folder>/<file>.csv (+ one .csv.zst),
    deterministic from (size, seed, files); return and write OUTPUT/generation.json summarising
    what was injected (rows per file, counts per damage kind, duplicates planted, ...)."""
    files = default_files(size_bytes) if files is None else files
    if seed < 0:
        raise ValueError(f"--seed must be 0 or more, got {seed}")
    if files < MIN_FILES:
        raise ValueError(
            f"--files must be at least {MIN_FILES} (one per damaged shard plus ordinary ones), got {files}"
        )
    if size_bytes < MIN_BYTES_PER_FILE * files:
        raise ValueError(
            f"--size {size_bytes} bytes is too small for {files} files (at least {MIN_BYTES_PER_FILE} bytes per file)"
        )
    return CorpusGenerator(Path(output), size_bytes, seed, files).generate()


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_size(text: str) -> int:
    """'5MB' → 5_000_000 (KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]I?B|B)?\s*", text.upper())
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 5MB, 200MB, 1.5GB, 500KiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2) or ""])
