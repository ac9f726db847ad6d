from pipeline.train.checkpoint import discard_incomplete, prune, read_latest, tag_for, write_latest


def make(ckpt, *steps):
    for step in steps:
        (ckpt / tag_for(step)).mkdir(parents=True)
        (ckpt / tag_for(step) / "mp_rank_00_model_states.pt").write_bytes(b"x")


def names(ckpt):
    return sorted(p.name for p in ckpt.glob("step_*"))


def test_prune_keeps_last_k_and_the_best(tmp_path):
    make(tmp_path, 10, 20, 30, 40)
    write_latest(tmp_path, tag_for(40))
    assert prune(tmp_path, keep_last=2, keep={tag_for(10)}) == [tag_for(20)]
    assert names(tmp_path) == [tag_for(10), tag_for(30), tag_for(40)]


def test_directories_newer_than_latest_are_incomplete(tmp_path):
    make(tmp_path, 10, 20, 30)
    write_latest(tmp_path, tag_for(20))
    assert read_latest(tmp_path) == tag_for(20)
    assert discard_incomplete(tmp_path) == [tag_for(30)]
    assert prune(tmp_path, keep_last=5, keep=set()) == []
    assert names(tmp_path) == [tag_for(10), tag_for(20)]


def test_no_latest_means_nothing_is_complete(tmp_path):
    make(tmp_path, 10)
    assert read_latest(tmp_path) is None
    assert discard_incomplete(tmp_path) == [tag_for(10)]
