"""Read stage on real files: every damaged-file kind, exact accounting, bounded memory."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from dataclasses import asdict

import pytest
import zstandard

from pipeline.core.typed_config import ConfigError, from_dict
from pipeline.formats.csv_corpus import FileReport, ReadConfig, read_csv_file


def read(path, **config) -> tuple[list, FileReport]:
    report = FileReport(str(path))
    docs = list(read_csv_file(str(path), ReadConfig(**config), report))
    # The invariant the executor relies on, checked on every file every test reads.
    assert report.rows_read == len(docs) + report.rows_malformed + report.rows_empty_text
    json.dumps(asdict(report))  # the report must be JSON-serialisable
    return docs, report


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def csv_bytes(rows, encoding="utf-8", lineterminator="\n") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=lineterminator).writerows(rows)
    return buffer.getvalue().encode(encoding)


def test_plain_utf8_rows_keep_source_and_row(tmp_path):
    path = write(tmp_path / "a.csv", csv_bytes([["id", "content"], [1, "第一行"], [2, "第二行"]]))
    docs, report = read(path)
    assert [(d.text, d.source, d.row) for d in docs] == [("第一行", str(path), 0), ("第二行", str(path), 1)]
    assert docs[1].key == f"{path}:1"
    assert report.encoding == "utf-8" and report.rows_read == 2 and report.rows_malformed == 0
    assert report.bytes_read == path.stat().st_size and not report.compressed


def test_text_column_is_configurable_and_found_anywhere(tmp_path):
    path = write(tmp_path / "a.csv", csv_bytes([["body", "id"], ["正文", 7]]))
    docs, _ = read(path, text_column="body")
    assert [d.text for d in docs] == ["正文"]


def test_utf8_with_bom(tmp_path):
    path = write(tmp_path / "bom.csv", b"\xef\xbb\xbf" + csv_bytes([["content"], ["带签名的文件"]]))
    docs, report = read(path)
    assert report.encoding == "utf-8-sig"
    assert [d.text for d in docs] == ["带签名的文件"]  # the BOM is not glued to the header


def test_gbk_file_is_detected_and_decoded(tmp_path):
    rows = [["id", "content"], [1, "国标编码的中文句子。"], [2, "第二句，还是中文！"]]
    path = write(tmp_path / "gbk.csv", csv_bytes(rows, encoding="gbk"))
    docs, report = read(path)
    assert report.encoding == "gb18030" and report.undecodable_bytes == 0
    assert [d.text for d in docs] == ["国标编码的中文句子。", "第二句，还是中文！"]


def test_encoding_decided_past_a_long_ascii_start(tmp_path):
    # The first block is pure ASCII (decodes the same in every candidate); the decision must
    # be taken on the first bytes that tell the encodings apart.
    rows = [["content"]] + [["ascii only row"]] * 500 + [["后面才有中文"]]
    path = write(tmp_path / "late.csv", csv_bytes(rows, encoding="gbk"))
    docs, report = read(path, block_bytes=256)
    assert report.encoding == "gb18030" and docs[-1].text == "后面才有中文"


def test_zstd_compressed_file(tmp_path):
    raw = csv_bytes([["id", "content"]] + [[i, f"压缩文件第{i}行"] for i in range(100)])
    path = write(tmp_path / "z.csv.zst", zstandard.ZstdCompressor().compress(raw))
    docs, report = read(path)
    assert report.compressed and report.encoding == "utf-8"
    assert [d.text for d in docs] == [f"压缩文件第{i}行" for i in range(100)]
    assert report.bytes_read == path.stat().st_size  # on-disk bytes, not decompressed ones


def test_zstd_file_with_several_frames(tmp_path):
    compressor = zstandard.ZstdCompressor()
    data = compressor.compress("content\n第一帧\n".encode()) + compressor.compress("第二帧\n".encode())
    docs, _ = read(write(tmp_path / "frames.csv.zst", data))
    assert [d.text for d in docs] == ["第一帧", "第二帧"]


def test_crlf_line_ends(tmp_path):
    path = write(tmp_path / "crlf.csv", csv_bytes([["id", "content"], [1, "行一"], [2, "行二"]], lineterminator="\r\n"))
    docs, report = read(path)
    assert [d.text for d in docs] == ["行一", "行二"]  # no stray \r
    assert report.rows_malformed == 0


def test_quoted_fields_with_newlines_commas_and_doubled_quotes(tmp_path):
    text = '他说："你好，\n世界"。\r\n第二段，有逗号, and "quotes"'
    path = write(
        tmp_path / "multi.csv", csv_bytes([["id", "content"], [1, text], [2, "下一行"]], lineterminator="\r\n")
    )
    assert b'""' in path.read_bytes()  # the writer really doubled the quotes
    docs, report = read(path)
    assert [d.text for d in docs] == [text, "下一行"]
    assert [d.row for d in docs] == [0, 1]


def test_empty_file(tmp_path):
    docs, report = read(write(tmp_path / "empty.csv", b""))
    assert docs == [] and report.skipped_reason == "empty_file" and report.rows_read == 0


def test_whitespace_or_bom_only_file_is_empty(tmp_path):
    for name, data in [("ws.csv", b"\r\n \n"), ("bom.csv", b"\xef\xbb\xbf\n")]:
        _, report = read(write(tmp_path / name, data))
        assert report.skipped_reason == "empty_file", name


def test_header_only_file_is_not_an_error(tmp_path):
    docs, report = read(write(tmp_path / "h.csv", b"id,content\n"))
    assert docs == [] and report.skipped_reason is None and report.rows_read == 0


def test_missing_column_skips_file_and_lists_columns(tmp_path):
    path = write(tmp_path / "nocol.csv", csv_bytes([["id", "title", "body"], [1, "标题", "正文"]]))
    docs, report = read(path)
    assert docs == [] and report.skipped_reason == "missing_column"
    assert "no column 'content'; columns are: id, title, body" in report.error
    assert str(path) in report.error


def test_truncated_mid_row_keeps_rows_before(tmp_path):
    full = csv_bytes([["id", "content"], [1, "完整的一行"], [2, "完整的第二行"], [3, "这一行会被截断"]])
    cut = full[: full.index("截断".encode())]  # ends inside the last field, no line end
    docs, report = read(write(tmp_path / "trunc.csv", cut))
    assert [d.text for d in docs] == ["完整的一行", "完整的第二行"]
    assert report.rows_read == 3 and report.rows_malformed == 1
    assert "row 2" in report.problems[0]


def test_truncated_before_last_column_counts_wrong_field_count(tmp_path):
    data = "content,id\n好的句子,1\n被截断的".encode()
    docs, report = read(write(tmp_path / "t2.csv", data))
    assert [d.text for d in docs] == ["好的句子"] and report.rows_malformed == 1
    assert "1 fields, header has 2" in report.problems[0]


def test_final_row_without_newline_can_be_kept(tmp_path):
    path = write(tmp_path / "nonl.csv", "content\n第一\n第二".encode())
    docs, _ = read(path, require_final_newline=False)
    assert [d.text for d in docs] == ["第一", "第二"]
    docs, report = read(path)
    assert [d.text for d in docs] == ["第一"] and report.rows_malformed == 1


def test_unterminated_quote_at_end(tmp_path):
    data = 'id,content\n1,好的\n2,"引号没有结束\n一直到文件末尾\n'.encode()
    docs, report = read(write(tmp_path / "unterm.csv", data))
    assert [d.text for d in docs] == ["好的"]
    assert report.rows_read == 2 and report.rows_malformed == 1
    assert "unterminated quoted field" in report.problems[0] and "line 3" in report.problems[0]


def test_unterminated_quote_swallowing_a_big_file_is_bounded(tmp_path):
    rows = "".join(f"{i},正常的行{i}\n" for i in range(2000))
    data = ('id,content\n0,开头\n1,"从这里开始引号不结束\n' + rows).encode()
    docs, report = read(write(tmp_path / "swallow.csv", data), max_record_chars=1000)
    assert [d.text for d in docs] == ["开头"]
    assert report.rows_malformed == 1 and "max_record_chars=1000" in report.error


def test_bad_quote_mid_file_is_one_malformed_row(tmp_path):
    data = 'id,content\n1,"坏"引号\n2,后面的行照常\n'.encode()
    docs, report = read(write(tmp_path / "badquote.csv", data))
    assert [(d.text, d.row) for d in docs] == [("后面的行照常", 1)]
    assert report.rows_malformed == 1 and report.problems[0].startswith("row 0 (line 2)")


def test_wrong_field_count_mid_file(tmp_path):
    data = "id,content\n1,好的\n2,多了,一列\n3,也好\n".encode()
    docs, report = read(write(tmp_path / "width.csv", data))
    assert [(d.text, d.row) for d in docs] == [("好的", 0), ("也好", 2)]
    assert report.rows_malformed == 1 and "3 fields, header has 2" in report.problems[0]


def test_empty_text_cells_are_counted_not_yielded(tmp_path):
    data = 'id,content\n1,有字\n2,\n3,"  "\n4,也有字\n'.encode()
    docs, report = read(write(tmp_path / "blank.csv", data))
    assert [(d.text, d.row) for d in docs] == [("有字", 0), ("也有字", 3)]
    assert report.rows_empty_text == 2


def test_blank_lines_are_not_records(tmp_path):
    data = "\nid,content\n1,第一\n\n2,第二\n\n".encode()
    docs, report = read(write(tmp_path / "blanklines.csv", data))
    assert [(d.text, d.row) for d in docs] == [("第一", 0), ("第二", 1)] and report.rows_read == 2


def test_undecodable_bytes_are_counted_and_replaced(tmp_path):
    good = csv_bytes([["id", "content"]] + [[i, "正常的中文内容，用来判断编码。"] for i in range(20)])
    data = good + b"99,\xff\xfe\xe4\xb8\xad\xe6\x96\x87\n"  # two stray bytes, then "中文"
    docs, report = read(write(tmp_path / "bad.csv", data))
    assert report.encoding == "utf-8" and report.undecodable_bytes == 2
    assert docs[-1].text == "\ufffd\ufffd中文" and len(docs) == 21


def test_nonexistent_path_is_an_open_error(tmp_path):
    docs, report = read(tmp_path / "missing.csv")
    assert docs == [] and report.skipped_reason == "open_error"
    assert "No such file" in report.error and "missing.csv" in report.error


def test_directory_named_like_a_csv_is_an_open_error(tmp_path):
    (tmp_path / "x.csv").mkdir()
    docs, report = read(tmp_path / "x.csv")
    assert docs == [] and report.skipped_reason == "open_error" and "directory" in report.error


def test_not_zstd_data_is_an_open_error(tmp_path):
    _, report = read(write(tmp_path / "fake.csv.zst", b"content\nnot compressed\n"))
    assert report.skipped_reason == "open_error" and "zstd" in report.error


def test_corrupt_zstd_frame_mid_file_keeps_rows_before(tmp_path):
    raw = csv_bytes([["id", "content"]] + [[i, f"第{i}行内容" * 5] for i in range(20000)])
    compressor = zstandard.ZstdCompressor(write_checksum=True)
    frames = b"".join(compressor.compress(raw[i : i + 65536]) for i in range(0, len(raw), 65536))
    damaged = bytearray(frames)
    middle = len(damaged) // 2
    damaged[middle : middle + 64] = bytes(64)
    docs, report = read(write(tmp_path / "corrupt.csv.zst", bytes(damaged)), block_bytes=4096)
    assert 0 < len(docs) < 20000 and report.error and "read failed" in report.error
    assert [d.row for d in docs] == list(range(len(docs)))  # the rows before are all there


def test_memory_is_bounded_by_the_block_not_the_file(tmp_path):
    """~6 MB of CSV in a .zst, read with a 16 KiB block: documents flow out long before the
    file is read, and the peak Python allocation stays a small multiple of the block."""
    path = tmp_path / "big.csv.zst"
    line = "，".join(["这是一个用来测试内存上限的比较长的句子"] * 4)
    chunk = "".join(f"{i},{line}{i}\n" for i in range(5000)).encode()
    with open(path, "wb") as raw, zstandard.ZstdCompressor(level=1).stream_writer(raw) as out:
        out.write(b"id,content\n")
        for _ in range(5):
            out.write(chunk)
    uncompressed = len(chunk) * 5
    block = 16 * 1024
    report = FileReport(str(path))
    tracemalloc.start()
    try:
        count = 0
        first_seen_at = None
        for _doc in read_csv_file(str(path), ReadConfig(block_bytes=block), report):
            if first_seen_at is None:
                first_seen_at = report.bytes_read
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 25000 and report.rows_read == 25000
    assert first_seen_at <= 2 * block  # streaming: the first row came out after a block or so
    assert peak < 24 * block < uncompressed / 15  # measured ~11 blocks (~180 KB) for 6 MB


def test_utf16_with_bom(tmp_path):
    path = write(tmp_path / "u16.csv", "content\r\n表格软件导出的文件\r\n".encode("utf-16"))
    docs, report = read(path)
    assert report.encoding == "utf-16" and [d.text for d in docs] == ["表格软件导出的文件"]


def test_reading_is_deterministic(tmp_path):
    rows = [["id", "content"]] + [[i, f'第{i}行，带\n换行和"引号"'] for i in range(300)]
    path = write(tmp_path / "det.csv", csv_bytes(rows, encoding="gbk") + "尾部截断".encode("gbk"))
    first, report_a = read(path, block_bytes=100)
    second, report_b = read(path, block_bytes=1 << 20)  # the block size changes nothing
    assert first == second and asdict(report_a) == asdict(report_b)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("encodings", ["utf-8", "no-such-codec"], "unknown encoding 'no-such-codec'"),
        ("encodings", [], "at least one"),
        ("block_bytes", 0, "block_bytes"),
        ("text_column", "", "text_column"),
    ],
)
def test_bad_read_config_is_refused_with_the_key(key, value, message):
    with pytest.raises(ConfigError, match=message) as info:
        from_dict(ReadConfig, {key: value}, "read")
    assert str(info.value).startswith("read:")


def test_overlong_line_stops_the_file_with_a_message(tmp_path):
    data = ("content\n第一行\n" + "长" * 500 + "\n之后的行\n").encode()
    docs, report = read(write(tmp_path / "long.csv", data), max_record_chars=100)
    assert [d.text for d in docs] == ["第一行"]
    assert report.rows_malformed == 1 and "row 1 (line 3)" in report.error
