"""A local web page to type a prompt and read the model's continuation.

Python's own `http.server` and one self-contained HTML page: nothing to install beyond the
model's dependencies, nothing fetched from the internet (no CDN scripts or fonts), so it runs
on an offline GPU node reached through an SSH tunnel. `GET /` serves the page, `POST
/api/generate` takes JSON {prompt, strategy, max_new_tokens, temperature, top_k, top_p,
repetition_penalty, seed} and answers {"continuations": [...], "seconds": ...}. One model
serves every browser tab; requests take turns (a lock), which is what one GPU can do anyway.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pipeline.serving.generate import GenerationSettings, generate

MAX_BODY_BYTES = 64 * 1024
REQUEST_FIELDS = (
    "strategy",
    "max_new_tokens",
    "temperature",
    "top_k",
    "top_p",
    "repetition_penalty",
    "seed",
    "num_sequences",
)

PAGE = """<!doctype html>
<html lang="zh">
<head>
<meta charset="utf-8">
<title>zh-pretrain chat</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  textarea { width: 100%; height: 7rem; font-size: 1.1rem; box-sizing: border-box; }
  fieldset { border: 1px solid #ccc; margin: .8rem 0; display: flex; flex-wrap: wrap; gap: .8rem; }
  label { font-size: .9rem; }
  input[type=number] { width: 5rem; }
  button { font-size: 1.1rem; padding: .4rem 1.4rem; }
  #answer { white-space: pre-wrap; font-size: 1.1rem; line-height: 1.6; border-left: 4px solid #4a8; padding: .5rem 1rem; min-height: 2rem; }
  #answer .prompt { color: #888; }
  #status { color: #888; font-size: .9rem; }
</style>
</head>
<body>
<h1>Continue a text</h1>
<p>MODEL_NAME</p>
<textarea id="prompt" placeholder="输入开头，模型会接着写…"></textarea>
<fieldset>
  <label>strategy <select id="strategy"><option>sample</option><option>greedy</option><option>beam</option></select></label>
  <label>max new tokens <input id="max_new_tokens" type="number" value="64" min="1"></label>
  <label>temperature <input id="temperature" type="number" value="0.8" step="0.1" min="0.05"></label>
  <label>top-k <input id="top_k" type="number" value="50" min="0"></label>
  <label>top-p <input id="top_p" type="number" value="0.95" step="0.05" min="0.05" max="1"></label>
  <label>repetition penalty <input id="repetition_penalty" type="number" value="1.1" step="0.05" min="0.1"></label>
  <label>seed <input id="seed" type="number" placeholder="random"></label>
</fieldset>
<button id="send">Continue</button> <span id="status"></span>
<h2>Answer</h2>
<div id="answer"></div>
<script>
const $ = (id) => document.getElementById(id);
async function send() {
  const body = { prompt: $("prompt").value, strategy: $("strategy").value };
  for (const key of ["max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "seed"]) {
    if ($(key).value !== "") body[key] = Number($(key).value);
  }
  $("send").disabled = true;
  $("status").textContent = "generating…";
  try {
    const response = await fetch("/api/generate", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || response.statusText);
    const answer = $("answer");
    answer.textContent = "";
    const prompt = document.createElement("span");
    prompt.className = "prompt";
    prompt.textContent = body.prompt;
    const continuation = document.createElement("span");
    continuation.id = "continuation";
    continuation.textContent = data.continuations[0].text;
    answer.append(prompt, continuation);
    $("status").textContent = `done in ${data.seconds.toFixed(2)} s` + (data.continuations[0].stopped_at_eos ? " (end of document)" : "");
  } catch (error) {
    $("status").textContent = "error: " + error.message;
  } finally {
    $("send").disabled = false;
  }
}
$("send").addEventListener("click", send);
$("prompt").addEventListener("keydown", (event) => { if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) send(); });
</script>
</body>
</html>
"""


def settings_from_request(payload: dict, defaults: GenerationSettings) -> GenerationSettings:
    unknown = set(payload) - set(REQUEST_FIELDS) - {"prompt"}
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)}")
    changes = {key: payload[key] for key in REQUEST_FIELDS if payload.get(key) is not None}
    settings = dataclasses.replace(defaults, **changes)
    settings.check()
    return settings


def make_server(
    model,
    tokenizer,
    host: str = "127.0.0.1",
    port: int = 8000,
    defaults: GenerationSettings | None = None,
    title: str = "",
) -> ThreadingHTTPServer:
    defaults = defaults or GenerationSettings(
        strategy="sample", temperature=0.8, top_k=50, top_p=0.95, repetition_penalty=1.1
    )
    page = PAGE.replace("MODEL_NAME", title.replace("&", "&amp;").replace("<", "&lt;")).encode("utf-8")
    model_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 — one quiet line per request instead of stderr noise
            pass

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: HTTPStatus, data: dict) -> None:
            self._send(status, json.dumps(data, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

        def do_GET(self):  # noqa: N802 — http.server's naming
            if self.path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, page, "text/html; charset=utf-8")
            elif self.path == "/api/health":
                self._json(HTTPStatus.OK, {"ok": True})
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no page {self.path}"})

        def do_POST(self):  # noqa: N802
            if self.path != "/api/generate":
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no endpoint {self.path}"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"request over {MAX_BODY_BYTES} bytes"})
                return
            try:
                payload = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(payload, dict) or not isinstance(payload.get("prompt", ""), str):
                    raise ValueError("expected a JSON object with a string 'prompt'")
                settings = settings_from_request(payload, defaults)
            except (ValueError, TypeError) as exc:
                self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
                return
            started = time.perf_counter()
            with model_lock:
                continuations = generate(model, tokenizer, payload.get("prompt", ""), settings)
            self._json(
                HTTPStatus.OK,
                {
                    "continuations": [dataclasses.asdict(c) for c in continuations],
                    "seconds": time.perf_counter() - started,
                },
            )

    return ThreadingHTTPServer((host, port), Handler)
