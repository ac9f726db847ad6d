# Shortcuts for developers; CI runs `bash .ci/run` (= `bash tests/run.sh`, which lints first).
.PHONY: install lint format test test-fast demo bench bench-faults

install:            ## .venv with the project, test and lint extras (+ Debian programs the tests drive)
	EXTRAS="test,lint,opencc" bash launch/install.sh
	bash launch/install_system.sh

lint:               ## ruff check + format check, import contracts, shellcheck
	bash tests/lint.sh

format:             ## rewrite Python files with ruff (lint fixes + formatting)
	.venv/bin/ruff check --fix pipeline tokenizer tests benchmarks launch
	.venv/bin/ruff format pipeline tokenizer tests benchmarks launch

test:               ## everything, as CI does (install, lint, all tests)
	bash tests/run.sh

test-fast:          ## the unit tests without multi-process and end-to-end runs
	bash tests/run.sh -m "not slow"

demo:               ## the product end to end on the embedded demo corpus
	bash launch/demo.sh

bench:              ## data-preparation and training benchmarks (minutes; results printed)
	.venv/bin/python benchmarks/bench_prepare.py --size 50MB --workers 2
	.venv/bin/python benchmarks/bench_train.py --steps 60 --nproc 2

bench-faults:       ## the trainer fault cases ×20 with random timing (hours; table in docs/trainer-faults.md)
	.venv/bin/python benchmarks/bench_trainer_faults.py --repeat 20 --results benchmarks/results/trainer-faults.jsonl --markdown docs/trainer-faults-table.md
