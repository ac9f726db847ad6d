import numpy as np
import pyarrow as pa
import pytest

from pipeline.formats.packed_shards import PackedBlocks, ShardWriter, token_dtype


def write(path, blocks, dtype):
    with ShardWriter(path, blocks.shape[1], dtype) as writer:
        for start in range(0, len(blocks), 700):  # several writes, several record batches
            writer.write_blocks(blocks[start : start + 700])
    return path


def test_dtype_switches_at_the_uint16_boundary():
    assert token_dtype(65_536) == np.uint16
    assert token_dtype(65_537) == np.uint32


@pytest.mark.parametrize("vocab", [32_000, 70_000])
def test_blocks_round_trip_by_mmap_and_datasets(tmp_path, vocab):
    rng = np.random.default_rng(0)
    first = rng.integers(0, vocab, size=(2500, 16))
    second = rng.integers(0, vocab, size=(3, 16))
    dtype = token_dtype(vocab)
    paths = [write(tmp_path / "a.arrow", first, dtype), write(tmp_path / "b.arrow", second, dtype)]
    blocks = PackedBlocks(paths)
    assert len(blocks) == 2503 and blocks.block_size == 16
    assert blocks[0].dtype == dtype
    np.testing.assert_array_equal(blocks[1234], first[1234])
    np.testing.assert_array_equal(blocks[2502], second[2])
    np.testing.assert_array_equal(blocks.gather([2500, 5]), np.stack([second[0], first[5]]))
    with pytest.raises(IndexError):
        blocks[2503]

    import datasets

    dataset = datasets.Dataset.from_file(str(paths[0]))
    assert len(dataset) == 2500
    assert dataset[7]["input_ids"] == first[7].tolist()


def test_reader_views_are_zero_copy(tmp_path):
    path = write(tmp_path / "a.arrow", np.arange(64).reshape(4, 16), np.uint16)
    before = pa.total_allocated_bytes()
    blocks = PackedBlocks([path])
    assert not blocks[3].flags.owndata
    assert pa.total_allocated_bytes() == before


def test_the_next_start_of_a_task_removes_the_temporary_file_of_its_killed_writer(tmp_path):
    # a writer killed mid-shard leaves its temporary file (a unique name, listed in the task's
    # journal); the task's next start removes exactly that, and leaves only the output behind
    import os
    import signal
    import subprocess
    import sys

    from pipeline.core.atomic import task_scope

    path = tmp_path / "train" / "00001-000.arrow"
    journal = tmp_path / "locks" / "00001.temps"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, os, signal, numpy as np; from pipeline.formats.packed_shards import ShardWriter\n"
                "from pipeline.core.atomic import task_scope\n"
                f"scope = task_scope({str(journal)!r}); scope.__enter__()\n"
                f"w = ShardWriter({str(path)!r}, 16, np.uint16); w.write_blocks(np.zeros((2048, 16), np.uint16)); w.sink.flush()\n"
                "os.kill(os.getpid(), signal.SIGKILL)"
            ),
        ],
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    assert child.wait() == -signal.SIGKILL
    (leftover,) = path.parent.iterdir()
    assert leftover.name.startswith(".00001-000.arrow.tmp-") and leftover.stat().st_size > 0
    assert journal.read_text().split() == [str(leftover)]
    with task_scope(journal) as published:
        write(path, np.arange(64).reshape(4, 16), np.uint16)
    assert [p.name for p in path.parent.iterdir()] == ["00001-000.arrow"]
    assert published == [path]
