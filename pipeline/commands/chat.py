"""A local chat page: type a prompt in the browser, read the model's continuation.

    python -m pipeline chat --model RUN/hf --port 8000      # then open http://127.0.0.1:8000
On a remote GPU node: `ssh -L 8000:127.0.0.1:8000 node` and open the same address locally.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.commands.model_args import add_model_arguments
from pipeline.model.loading import load_model
from pipeline.serving.chat_server import make_server


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default: this machine only)")


def run(args: argparse.Namespace) -> int:
    try:
        model, tokenizer = load_model(args.model, args.device, args.dtype)
    except (ValueError, FileNotFoundError) as exc:
        print(f"chat: {exc}", file=sys.stderr)
        return 2
    server = make_server(model, tokenizer, args.host, args.port, title=f"model: {args.model}")
    host, port = server.server_address[:2]
    print(f"chat page on http://{host}:{port}/  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
