"""Which source a file belongs to: the input root, folder rules, glob rules (pure functions)."""

from __future__ import annotations

import pytest

from pipeline.data.mixture import MixtureError, input_root, resolve_sources

FILES = [
    "/data/corpus/news/2019/part-0.csv",
    "/data/corpus/news/2021/part-0.csv",
    "/data/corpus/forum_a/part-0.csv",
    "/data/corpus/forum_b/part-0.csv.zst",
    "/data/corpus/docs/api/part-0.csv",
    "/data/corpus/docs/guide/part-0.csv",
    "/data/corpus/loose.csv",
]


@pytest.mark.parametrize(
    "patterns,root",
    [
        (["/data/corpus/**/*.csv*"], "/data/corpus"),
        (["/data/corpus/news/*.csv", "/data/corpus/forum_*/*.csv"], "/data/corpus"),
        (["corpus/**/*.csv"], "corpus"),
        (["/data/corpus/loose.csv"], "/data/corpus"),
        (["*.csv"], "."),
    ],
)
def test_input_root_is_the_patterns_fixed_prefix(patterns, root):
    assert input_root(patterns) == root


def test_folders_are_sources_unless_a_rule_names_them():
    sources, weights = resolve_sources(FILES, "/data/corpus", {"news": 2.0, "forum_*": 0.5, "docs/api": 0.25})
    assert sources == ["news", "news", "forum_*", "forum_*", "docs/api", "docs/guide", "."]
    assert weights == {".": 1.0, "docs/api": 0.25, "docs/guide": 1.0, "forum_*": 0.5, "news": 2.0}
    # without rules every folder is its own source (nested folders too)
    sources, _ = resolve_sources(FILES, "/data/corpus", {})
    assert sources == ["news/2019", "news/2021", "forum_a", "forum_b", "docs/api", "docs/guide", "."]


def test_a_folder_rule_matches_whole_path_components_only():
    with pytest.raises(MixtureError, match="mixture.new: matches no input file"):
        resolve_sources(FILES, "/data/corpus", {"new": 2.0})  # not a prefix match on "news"


def test_a_file_in_two_rules_is_refused_naming_both():
    with pytest.raises(MixtureError, match=r"mixture.news and mixture.news/2019 both match .*2019/part-0.csv"):
        resolve_sources(FILES, "/data/corpus", {"news": 2.0, "news/2019": 3.0})
