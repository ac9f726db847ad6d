import dataclasses
from typing import Literal

import pytest

from pipeline.core.typed_config import ConfigError, apply_overrides, from_dict, load_config


@dataclasses.dataclass
class Inner:
    min_chars: int = 10
    share: float = 0.5
    mode: Literal["bpe", "unigram"] = "bpe"

    def check(self):
        if not 0 <= self.share <= 1:
            raise ValueError(f"share must be in [0, 1], got {self.share}")


@dataclasses.dataclass
class Outer:
    name: str = "x"
    inner: Inner = dataclasses.field(default_factory=Inner)
    patterns: list[str] = dataclasses.field(default_factory=list)
    limit: int | None = None


def test_defaults_and_nested_values():
    cfg = from_dict(Outer, {"inner": {"min_chars": 3}, "patterns": ["a", "b"], "limit": 4})
    assert cfg.inner.min_chars == 3 and cfg.inner.share == 0.5 and cfg.patterns == ["a", "b"]
    assert cfg.limit == 4


@pytest.mark.parametrize(
    "data, message",
    [
        ({"inner": {"min_chrs": 3}}, "inner.min_chrs: unknown key (did you mean 'min_chars'?)"),
        ({"inner": {"min_chars": "ten"}}, "inner.min_chars: expected an integer, got 'ten'"),
        ({"inner": {"mode": "wordpiece"}}, "inner.mode: 'wordpiece' is not one of ['bpe', 'unigram']"),
        ({"inner": {"share": 2.0}}, "inner: share must be in [0, 1], got 2.0"),
        ({"patterns": "a"}, "patterns: expected a list"),
    ],
)
def test_bad_values_name_the_key(data, message):
    with pytest.raises(ConfigError) as err:
        from_dict(Outer, data)
    assert message in str(err.value)


def test_overrides_and_yaml_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: y\ninner:\n  share: 0.25\n")
    cfg = load_config(Outer, path, ["inner.min_chars=7", "limit=3e3"])
    assert (cfg.name, cfg.inner.share, cfg.inner.min_chars, cfg.limit) == ("y", 0.25, 7, 3000)
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides({}, ["nonsense"])
    with pytest.raises(ConfigError, match=r"c.yaml: inner.bogus: unknown key"):
        load_config(Outer, path, ["inner.bogus=1"])
