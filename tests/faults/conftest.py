"""One small corpus, a tokenizer and an uninterrupted reference run, shared by the fault tests."""

from __future__ import annotations

import pytest

from tests.faults.prepare_harness import Setup, make_setup


@pytest.fixture(scope="session")
def fault_setup(tmp_path_factory) -> Setup:
    return make_setup(tmp_path_factory.mktemp("faults"))
