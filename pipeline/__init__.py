"""zh-pretrain: pretrain a Chinese GPT from a folder of CSV shards.

Packages, each importing only the ones listed after it (enforced by import-linter, see
pyproject.toml):

    cli, commands   the one command line (`python -m pipeline`, `zh-pretrain`)
    tools           run planner, reports, demo-corpus generator
    serving         generation and the chat page
    data | train    data preparation stages | the DeepSpeed trainer
    evaluation      held-out perplexity and accuracy (one definition, shared with train)
    model           model configs, building, FLOPs, loading an exported model
    tokenizer/      (top-level package) sentencepiece training and its HF export
    formats         documents, CSV corpus reading, packed shards, manifest, metrics file
    core            atomic writes, typed config loading, fingerprints, GPU table
"""
