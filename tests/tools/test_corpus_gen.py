"""The synthetic corpus: every damage kind is really in the written bytes, and it is deterministic."""

import collections
import csv
import hashlib
import io
import json
import re

import pytest
import zstandard

from pipeline.cli import main
from pipeline.tools import corpus_vocab
from pipeline.tools.corpus_gen import DAMAGED_SHARDS, generate_corpus, parse_size

CJK = re.compile(r"[\u4e00-\u9fff]")
SIZE = 1_500_000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    summary = generate_corpus(root, SIZE, seed=0, files=12)
    return root, summary


def shard(corpus, kind):
    root, summary = corpus
    record = next(r for r in summary["files"] if r["damage"] == kind)
    return root / record["path"], record


def raw_text(path, record) -> str:
    data = path.read_bytes()
    if record["damage"] == "zst":
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return data.decode({"gbk": "gb18030", "bom": "utf-8-sig"}.get(record["damage"], "utf-8"))


def parse(path, record) -> list[list[str]]:
    return list(csv.reader(io.StringIO(raw_text(path, record), newline="")))


def contents(corpus) -> dict[str, list[str]]:
    """path → the `content` cells of every complete row of every readable file."""
    root, summary = corpus
    texts = {}
    for record in summary["files"]:
        if record["damage"] in ("empty", "no_content"):
            continue
        rows = parse(root / record["path"], record)
        column = rows[0].index("content")
        texts[record["path"]] = [row[column] for row in rows[1 : 1 + record["rows"]]]
    return texts


def tree_hash(root) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


# --- layout and summary ------------------------------------------------------------------------
def test_layout_summary_and_size(corpus):
    root, summary = corpus
    on_disk = json.loads((root / "generation.json").read_text(encoding="utf-8"))
    assert on_disk == {key: value for key, value in summary.items() if key != "seconds"}
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*.csv*"))
    assert files == sorted(r["path"] for r in summary["files"]) and len(files) == 12
    assert len({path.split("/")[0] for path in files}) >= 3  # several folders
    for record in summary["files"]:
        assert (root / record["path"]).stat().st_size == record["bytes"]
    assert sorted(summary["damaged_shards"]) == sorted(DAMAGED_SHARDS)
    assert len(set(summary["damaged_shards"].values())) == len(DAMAGED_SHARDS)  # one file each
    for kind, path in summary["damaged_shards"].items():
        assert path.endswith(".csv.zst") if kind == "zst" else kind.replace("_", "") in path
    total = sum(p.stat().st_size for p in root.rglob("*.csv*"))
    assert total == summary["bytes_written"]
    assert abs(total - SIZE) <= 0.1 * SIZE
    layouts = {tuple(r["columns"]) for r in summary["files"] if r["damage"] not in ("empty", "no_content")}
    assert any(cols[0] != "content" for cols in layouts) and all(len(cols) >= 2 for cols in layouts)


@pytest.mark.parametrize("size,files,expected_files", [(200_000, 10, 10), (3_000_000, 25, 25), (300_000, None, 16)])
def test_size_within_ten_percent(tmp_path, size, files, expected_files):
    summary = generate_corpus(tmp_path, size, seed=3, files=files)
    total = sum(p.stat().st_size for p in tmp_path.rglob("*.csv*"))
    assert abs(total - size) <= 0.1 * size
    assert len(summary["files"]) == expected_files


def test_every_readable_file_parses_with_its_recorded_row_count(corpus):
    root, summary = corpus
    for record in summary["files"]:
        if record["damage"] in ("empty", "truncated"):
            continue
        rows = parse(root / record["path"], record)
        assert rows[0] == record["columns"]
        assert len(rows) - 1 == record["rows"] > 0
        assert all(len(row) == len(record["columns"]) for row in rows), record["path"]
    assert summary["rows_written"] == sum(r["rows"] for r in summary["files"])


# --- damaged shards ----------------------------------------------------------------------------
def test_gbk_shard_is_gbk_not_utf8(corpus):
    path, record = shard(corpus, "gbk")
    data = path.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    text = data.decode("gb18030")
    assert len(CJK.findall(text)) > 1000
    assert text.startswith(",".join(record["columns"]))
    assert record["encoding"] == "gbk"


def test_every_character_but_emoji_is_encodable_as_gbk():
    """Else the GBK shard could meet a row it cannot write."""
    to_fullwidth = {code: code + 0xFEE0 for code in range(0x21, 0x7F)}
    text = (
        "".join(sorted(corpus_vocab.vocabulary()))
        + corpus_vocab.TRADITIONAL_CHARS
        + "".join(token.translate(to_fullwidth) for token in corpus_vocab.FULLWIDTH_TOKENS)
    )
    text.encode("gbk")
    assert not any(ch.encode("gbk", errors="ignore") for ch in corpus_vocab.EMOJI)


def test_bom_shard_starts_with_a_bom(corpus):
    path, record = shard(corpus, "bom")
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and not data[3:].startswith(b"\xef\xbb\xbf")
    assert parse(path, record)[0] == record["columns"]


def test_zst_shard_is_zstandard_with_a_csv_inside(corpus):
    path, record = shard(corpus, "zst")
    data = path.read_bytes()
    assert path.name.endswith(".csv.zst") and data[:4] == b"\x28\xb5\x2f\xfd"
    inside = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    assert len(inside) == record["uncompressed_bytes"] > len(data)
    rows = list(csv.reader(io.StringIO(inside.decode("utf-8"), newline="")))
    assert "content" in rows[0] and len(rows) - 1 == record["rows"]


def test_crlf_shard_has_only_crlf_line_ends(corpus):
    path, record = shard(corpus, "crlf")
    data = path.read_bytes()
    assert data.count(b"\r\n") > record["rows"]
    assert data.count(b"\n") == data.count(b"\r\n")
    other_path, _ = shard(corpus, "bom")
    assert b"\r\n" not in other_path.read_bytes()  # the others use LF


def test_multiline_shard_has_quoted_fields_with_newlines_and_doubled_quotes(corpus):
    path, record = shard(corpus, "multiline")
    data = path.read_text(encoding="utf-8")
    assert '""' in data
    rows = parse(path, record)
    column = rows[0].index("content")
    both = [row[column] for row in rows[1:] if "\n" in row[column] and '"' in row[column]]
    assert len(both) > 0.5 * record["rows"]


def test_empty_shard_is_zero_bytes(corpus):
    path, record = shard(corpus, "empty")
    assert path.stat().st_size == 0 and record["bytes"] == 0 and record["rows"] == 0


def test_no_content_shard_lacks_the_column(corpus):
    path, record = shard(corpus, "no_content")
    header = parse(path, record)[0]
    assert "content" not in header and "text" in header
    assert record["rows"] > 0


def test_truncated_shard_ends_inside_an_open_quote(corpus):
    path, record = shard(corpus, "truncated")
    text = path.read_text(encoding="utf-8")
    assert text.count('"') % 2 == 1  # the last quoted field never closes
    assert not text.endswith("\n")
    complete = list(csv.reader(io.StringIO(text[: text.rindex('"')], newline="")))
    # Header + the complete rows + the start of the cut row before its opening quote.
    assert len(complete) == 1 + record["rows"] + 1
    with pytest.raises(csv.Error):
        list(csv.reader(io.StringIO(text, newline=""), strict=True))


# --- row damage --------------------------------------------------------------------------------
DETECTORS = {
    "html": lambda t: bool(re.search(r"<p>|<br/>|&nbsp;|&gt;|&#8220;|&amp;|<div|<span", t)),
    "ansi": lambda t: "\x1b[" in t,
    "wrapped_spaces": lambda t: bool(re.search(r"[\u4e00-\u9fff] [\u4e00-\u9fff] [\u4e00-\u9fff]", t)),
    "english": lambda t: bool(re.fullmatch(r"[A-Za-z][A-Za-z ,.?']+", t)),
    "short": lambda t: 0 < len(t) <= 5 and not t.isascii(),
    "traditional": lambda t: any(c in TRADITIONAL_ONLY for c in t),
    "emoji": lambda t: any(ord(c) >= 0x1F300 for c in t),
    "fullwidth": lambda t: bool(re.search(r"[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]", t)),
    "navigation": lambda t: "首页" in t and (">" in t or "|" in t),
    "repetitive": lambda t: bool(re.search(r"(.)\1{7,}", t)) or bool(re.search(r"(.{8,})\n?\1\n?\1", t)),
    "empty": lambda t: t == "",
}
TRADITIONAL_ONLY = set(corpus_vocab.TRADITIONAL_CHARS) - set(corpus_vocab.SIMPLIFIED_CHARS)


def test_every_row_damage_kind_is_in_the_rows(corpus):
    root, summary = corpus
    texts = [text for rows in contents(corpus).values() for text in rows]
    for kind, detect in DETECTORS.items():
        found = sum(1 for text in texts if detect(text))
        assert found >= 1, kind
        assert summary["damage_counts"][kind] >= 1, kind
        print(kind, found, summary["damage_counts"][kind])


def test_duplicates_within_and_across_files(corpus):
    root, summary = corpus
    files_of = collections.defaultdict(set)
    within = 0
    for path, rows in contents(corpus).items():
        counts = collections.Counter(text for text in rows if len(text) >= 30)
        within += sum(count - 1 for count in counts.values())
        for text in counts:
            files_of[text].add(path)
    across = sum(1 for paths in files_of.values() if len(paths) >= 2)
    assert within >= 1 and across >= 10
    assert summary["damage_counts"]["duplicate_within_file"] >= 1
    assert summary["damage_counts"]["duplicate_across_files"] >= across
    assert summary["duplicates_planted"] == (
        summary["damage_counts"]["duplicate_within_file"] + summary["damage_counts"]["duplicate_across_files"]
    )


def test_rows_are_mostly_chinese_of_all_three_shapes(corpus):
    texts = [text for rows in contents(corpus).values() for text in rows if text]
    chinese = [t for t in texts if len(CJK.findall(t)) >= 0.5 * len(t)]
    assert len(chinese) >= 0.85 * len(texts)
    assert any(len(t) < 40 for t in chinese)  # sentences
    assert any("\n" in t for t in chinese)  # multi-paragraph documents
    assert sum(1 for t in chinese if "。" in t and "，" in t) >= 0.5 * len(chinese)  # full-width punctuation


def test_vocabulary_is_small_and_zipf_like(corpus):
    counts = collections.Counter(c for rows in contents(corpus).values() for t in rows for c in CJK.findall(t))
    assert 300 <= len(counts) <= 3000
    frequencies = sorted(counts.values(), reverse=True)
    top_tenth = sum(frequencies[: len(frequencies) // 10])
    assert top_tenth >= 0.4 * sum(frequencies)  # a heavy head
    assert frequencies[-1] * 100 < frequencies[0]  # and a long tail


# --- determinism and re-runs -------------------------------------------------------------------
def test_same_arguments_give_a_byte_identical_tree_and_another_seed_does_not(tmp_path):
    first = generate_corpus(tmp_path / "a", 300_000, seed=7, files=10)
    second = generate_corpus(tmp_path / "b", 300_000, seed=7, files=10)
    other = generate_corpus(tmp_path / "c", 300_000, seed=8, files=10)
    assert tree_hash(tmp_path / "a") == tree_hash(tmp_path / "b")
    assert tree_hash(tmp_path / "a") != tree_hash(tmp_path / "c")
    assert first["files"] == second["files"] and first["files"] != other["files"]
    # A re-run into the same directory rewrites it identically.
    generate_corpus(tmp_path / "a", 300_000, seed=7, files=10)
    assert tree_hash(tmp_path / "a") == tree_hash(tmp_path / "b")


def test_refuses_a_directory_holding_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes.txt"):
        generate_corpus(tmp_path, 200_000, files=10)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_bad_arguments_are_refused_clearly(tmp_path, capsys):
    with pytest.raises(ValueError, match="at least 10"):
        generate_corpus(tmp_path / "x", 1_000_000, files=5)
    with pytest.raises(ValueError, match="seed"):
        generate_corpus(tmp_path / "x", 1_000_000, seed=-1)
    with pytest.raises(ValueError, match="too small"):
        generate_corpus(tmp_path / "x", 10_000, files=10)
    assert parse_size("5MB") == 5_000_000 and parse_size("1.5GB") == 1_500_000_000 and parse_size("2KiB") == 2048
    assert main(["generate-corpus", "--output", str(tmp_path / "y"), "--files", "3"]) == 2
    assert "at least 10" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["generate-corpus", "--output", str(tmp_path / "y"), "--size", "lots"])


def test_command_line_writes_the_tree(tmp_path, capsys):
    out = tmp_path / "corpus"
    assert main(["generate-corpus", "--output", str(out), "--size", "300KB", "--seed", "1", "--files", "10"]) == 0
    assert "wrote 10 files" in capsys.readouterr().out
    summary = json.loads((out / "generation.json").read_text(encoding="utf-8"))
    assert summary["seed"] == 1 and summary["size_bytes_requested"] == 300_000


def test_traditional_table_matches_opencc_for_the_whole_vocabulary():
    opencc = pytest.importorskip("opencc")  # the optional extra; the generator itself never needs it
    converter = opencc.OpenCC("s2t")
    expected = {c: converter.convert(c) for c in corpus_vocab.vocabulary()}
    expected = {s: t for s, t in expected.items() if s != t and len(t) == 1}
    table = dict(zip(corpus_vocab.SIMPLIFIED_CHARS, corpus_vocab.TRADITIONAL_CHARS))
    assert table == expected, "run `python -m pipeline.tools.corpus_vocab` and paste its table"
