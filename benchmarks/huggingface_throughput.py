#!/usr/bin/env python3
"""The Hugging Face runtime (`core_huggingface`) under load, measured in one
run on two tiny checkpoints built offline by `core_huggingface.testing`: a
BERT text classifier and a GPT-2 (text-generation, greedy, 8 new tokens).

1. Batching: 1-row requests from 64 connections (`wrk -t2 -c64`) to core
   with `max_batch_size`/`max_batch_time` (`*-batched`) and without
   (`*-unbatched`), for each model. Result: batched/unbatched.
2. Overhead: core unbatched against a bare app (`*-bare`: raw ASGI on the
   same uvicorn loop and HTTP parser, orjson, the same transformers pipeline
   called inline; `*-bare-thread`: called through `asyncio.to_thread`), all
   under 16 connections (`--overhead-connections`; under 64 the inline bare
   app leaves a few requests waiting past wrk's 2 s timeout). Result:
   core/bare.
3. Streaming: time to first token and tokens/s of GPT-2 (48 new tokens)
   through core's `/v2/models/gpt2/generate_stream` (SSE, read with httpx,
   one request at a time) against the same pipeline called in this process
   with a streamer. Measured on the `gpt2-unbatched` server of every round.

torch runs one intra-op thread everywhere (`--torch-threads`): the
servers' `intra_op_threads`, the bare apps' and this process's
`torch.set_num_threads`. Every configuration is a server of its own on
127.0.0.1, started and measured alone, in an order that rotates every round; medians of the rounds
and their ratios are reported. Reuses rest_throughput.py's helpers (server
start/stop, wrk and its parsing, medians, tables). Runs under core's venv
(it builds the checkpoints and makes the direct calls with torch):

    .venv/bin/python benchmarks/huggingface_throughput.py --rounds 5 --markdown

The file is also the bare app: `huggingface_throughput.py bare --task ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import rest_throughput as rt
from rest_throughput import Payload, Predictions, Result, Server

# Offline: the checkpoints are local folders; nothing may reach the hub.
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
MODELS = {"classifier": "text-classification", "gpt2": "text-generation"}
KINDS = ("batched", "unbatched", "bare", "bare-thread")
CONFIGURATIONS = tuple(f"{model}-{kind}" for model in MODELS for kind in KINDS)
TEXT = "I love this movie, the story is wonderful and moving!"
PROMPT = "the cat sat"
# Ratios reported: (numerator, denominator) configurations.
PAIRS = tuple(
    pair
    for model in MODELS
    for pair in (
        (f"{model}-batched", f"{model}-unbatched"),
        (f"{model}-unbatched", f"{model}-bare"),
        (f"{model}-unbatched", f"{model}-bare-thread"),
        (f"{model}-bare", f"{model}-bare-thread"),
    )
)


def infer_path(model: str) -> str:
    return f"/v2/models/{model}/infer"


def model_of(configuration: str) -> str:
    return configuration.split("-", 1)[0]


# --------------------------------------------------------------------------- the bare app


def bare_app(task: str, checkpoint: str, name: str, call: str, threads: int) -> Any:
    """A raw ASGI app answering `/v2/models/NAME/infer` as core does (same
    input and output tensors), with nothing but orjson around the pipeline."""
    import orjson
    import torch
    from bare_asgi import HEALTH_PATHS, _read_body, _respond  # the REST benchmark's bare app
    from transformers import pipeline

    if threads:
        torch.set_num_threads(threads)
    pipe = cast(Any, pipeline)(task, model=checkpoint)
    if task == "text-generation":
        # One prompt needs no padding, but generate asks for a pad token.
        pipe.model.generation_config.pad_token_id = pipe.tokenizer.eos_token_id

    def classify(texts: list[str]) -> list[dict[str, Any]]:
        results = pipe(texts, truncation=True)  # the best label of each text
        shape = [len(results)]
        return [
            {"name": "label", "shape": shape, "datatype": "BYTES", "data": [r["label"] for r in results]},
            {"name": "score", "shape": shape, "datatype": "FP32", "data": [r["score"] for r in results]},
        ]

    def generate(prompts: list[str], parameters: dict[str, Any]) -> list[dict[str, Any]]:
        results = pipe(
            prompts,
            max_new_tokens=parameters.get("max_new_tokens", 8),
            do_sample=parameters.get("temperature", 0) != 0,
            return_full_text=False,
        )
        texts = [(r[0] if isinstance(r, list) else r)["generated_text"] for r in results]
        return [{"name": "text_output", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]

    def run(request: dict[str, Any]) -> list[dict[str, Any]]:
        rows = request["inputs"][0]["data"]
        if task == "text-generation":
            return generate(rows, request.get("parameters") or {})
        return classify(rows)

    path = infer_path(name)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET" and scope["path"] in HEALTH_PATHS:
            await _respond(send, 200)
        elif scope["method"] == "POST" and scope["path"] == path:
            request = orjson.loads(await _read_body(receive))
            outputs = await asyncio.to_thread(run, request) if call == "thread" else run(request)
            response = {"model_name": name, "id": request.get("id") or str(uuid.uuid4()), "outputs": outputs}
            await _respond(send, 200, orjson.dumps(response))
        else:
            await _respond(send, 404, b'{"error":"not found"}')

    return app


def serve_bare(argv: list[str]) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="huggingface_throughput.py bare")
    parser.add_argument("--task", required=True, choices=sorted(MODELS.values()))
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--call", choices=("inline", "thread"), default="inline")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = bare_app(args.task, args.checkpoint, args.name, args.call, args.torch_threads)
    # Same uvicorn settings as core and bare_asgi.py: uvloop, httptools, no access log.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
    )
    return 0


# --------------------------------------------------------------------------- configurations


def build_checkpoints(root: Path) -> dict[str, Path]:
    from core_huggingface.testing import build_gpt2, build_text_classifier

    return {"classifier": build_text_classifier(root / "classifier"), "gpt2": build_gpt2(root / "gpt2")}


def write_core_model(
    folder: Path, model: str, checkpoint: Path, args: argparse.Namespace, batched: bool
) -> Path:
    extra = {"intra_op_threads": args.torch_threads} if args.torch_threads else {}
    settings: dict[str, Any] = {
        "name": model,
        "implementation": "huggingface",
        "parameters": {"uri": str(checkpoint), "extra": extra},
    }
    if batched:
        settings |= {"max_batch_size": args.batch_size, "max_batch_time": args.batch_time}
    (folder / model).mkdir(parents=True)
    (folder / model / "model-settings.json").write_text(json.dumps(settings))
    return folder


def factory(name: str, checkpoints: dict[str, Path], args: argparse.Namespace) -> Callable[[Path], Server]:
    model, kind = name.split("-", 1)

    def make(folder: Path) -> Server:
        if kind.startswith("bare"):
            port = rt.free_port()
            cmd = [str(args.core_python), str(Path(__file__).resolve()), "bare", "--task", MODELS[model]]
            cmd += ["--checkpoint", str(checkpoints[model]), "--name", model, "--port", str(port)]
            cmd += ["--call", "thread" if kind == "bare-thread" else "inline"]
            cmd += ["--torch-threads", str(args.torch_threads)]
            return Server(name, cmd, folder, port, env=dict(OFFLINE))
        repository = write_core_model(folder / "models", model, checkpoints[model], args, kind == "batched")
        options = ["--parallel-workers", str(args.parallel_workers)]
        return rt.core_server(args.core_python, repository, folder, options, name, dict(OFFLINE))

    return make


def payloads(args: argparse.Namespace) -> dict[tuple[str, int], Payload]:
    """The 1-row request of each model, once per load (wrk connections): named
    "classifier 1-row c64" and so on."""

    def body(request: dict[str, Any]) -> bytes:
        return json.dumps(request, separators=(",", ":")).encode()

    text = {"name": "inputs", "shape": [1], "datatype": "BYTES", "data": [TEXT]}
    prompt = {"name": "text_inputs", "shape": [1], "datatype": "BYTES", "data": [PROMPT]}
    greedy = {"max_new_tokens": 8, "temperature": 0}
    requests: dict[str, dict[str, Any]] = {
        "classifier": {"inputs": [text]},
        "gpt2": {"inputs": [prompt], "parameters": greedy},
    }
    return {
        (model, connections): Payload(f"{model} 1-row c{connections}", 1, body(request), infer_path(model))
        for model, request in requests.items()
        for connections in dict.fromkeys((args.connections, args.overhead_connections))
    }


def loads(configuration: str, args: argparse.Namespace) -> list[int]:
    """The wrk connections a configuration is measured with: batching's load
    (batched and unbatched), the overhead's (unbatched and the bare apps)."""
    kind = configuration.split("-", 1)[1]
    if kind == "batched":
        return [args.connections]
    if kind == "unbatched":
        return list(dict.fromkeys((args.connections, args.overhead_connections)))
    return [args.overhead_connections]


def check(port: int, payload: Payload) -> tuple[str, list[object] | None]:
    """One request outside wrk: HTTP 200, and the outputs every configuration
    must agree on: label and score (4 decimals), or the generated text."""
    try:
        status, body = rt.http("POST", port, payload.path, payload.body, timeout=60)
    except OSError as exc:
        return f"request failed: {exc}", None
    if status != 200:
        return f"HTTP {status}: {body[:200]!r}", None
    try:
        outputs = {o["name"]: o["data"] for o in json.loads(body)["outputs"]}
        if payload.name.startswith("classifier"):
            return "", [outputs["label"][0], round(float(outputs["score"][0]), 4)]
        return "", [outputs["text_output"][0]]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return f"malformed response ({exc!r}): {body[:200]!r}", None


def rows_per_call(port: int, model: str) -> float | None:
    """Rows per pipeline call over the whole start (Triton statistics)."""
    status, body = rt.http("GET", port, f"/v2/models/{model}/stats")
    if status != 200:
        return None
    (stat,) = json.loads(body)["model_stats"]
    executions = stat.get("execution_count", 0)
    return stat.get("inference_count", 0) / executions if executions else None


# --------------------------------------------------------------------------- streaming


@dataclass
class Stream:
    """One generation: time to first token (ms), decode rate after it, tokens, text."""

    ttft_ms: float
    tokens_per_s: float
    tokens: int
    text: str


@dataclass
class StreamRound:
    round: int
    path: str  # "core" or "direct"
    ttft_ms: float  # medians of the round's requests
    tokens_per_s: float
    total_ms: float
    valid: bool
    note: str = ""
    requests: list[Stream] = field(default_factory=list)


def rate(tokens: int, first: float, last: float) -> float:
    """Tokens after the first per second, from the first token to the end."""
    return (tokens - 1) / (last - first) if last > first and tokens > 1 else 0.0


def core_stream(client: Any, body: bytes) -> Stream:
    started = time.perf_counter()
    first = last = 0.0
    text, tokens = "", 0
    headers = {"content-type": "application/json"}
    with client.stream("POST", "/v2/models/gpt2/generate_stream", content=body, headers=headers) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.read()[:200]!r}")
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            now = time.perf_counter()
            event = json.loads(line[len("data: ") :])
            if "error" in event:
                raise RuntimeError(f"stream error: {event['error']}")
            if event.get("text_output") and not first:
                first = now
            text += event.get("text_output", "")
            tokens = event.get("completion_tokens", tokens)
            last = now
    return Stream((first - started) * 1e3, rate(tokens, first, last), tokens, text)


class Direct:
    """The GPT-2 pipeline in this process, with a streamer that times the
    first new token (generate's first `put` is the prompt)."""

    def __init__(self, checkpoint: Path, threads: int) -> None:
        import torch
        from transformers import pipeline

        if threads:
            torch.set_num_threads(threads)
        self.pipe = cast(Any, pipeline)("text-generation", model=str(checkpoint))
        self.pipe.model.generation_config.pad_token_id = self.pipe.tokenizer.eos_token_id

    def __call__(self, max_new_tokens: int) -> Stream:
        from transformers.generation.streamers import BaseStreamer

        class Timer(BaseStreamer):
            def __init__(self) -> None:
                self.prompt = True
                self.first = 0.0
                self.tokens = 0

            def put(self, value: Any) -> None:
                if self.prompt:
                    self.prompt = False
                    return
                if not self.first:
                    self.first = time.perf_counter()
                self.tokens += int(value.numel())

            def end(self) -> None:
                pass

        timer = Timer()
        started = time.perf_counter()
        result = self.pipe(
            PROMPT, max_new_tokens=max_new_tokens, do_sample=False, return_full_text=False, streamer=timer
        )
        ended = time.perf_counter()
        text = result[0]["generated_text"]
        return Stream(
            (timer.first - started) * 1e3, rate(timer.tokens, timer.first, ended), timer.tokens, text
        )


def stream_round(round_number: int, port: int, direct: Direct, args: argparse.Namespace) -> list[StreamRound]:
    """`--stream-requests` generations through core, and as many direct
    calls, after 2 warm-ups each; the two paths alternate which goes first
    from round to round."""
    import httpx

    body = json.dumps(
        {"text_input": PROMPT, "parameters": {"max_new_tokens": args.stream_tokens, "temperature": 0}}
    ).encode()
    time.sleep(1)  # let the server finish what the wrk run left in flight
    out: list[StreamRound] = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        runs: dict[str, Callable[[], Stream]] = {
            "core": lambda: core_stream(client, body),
            "direct": lambda: direct(args.stream_tokens),
        }
        order = ["core", "direct"] if round_number % 2 else ["direct", "core"]
        for path in order:
            note = ""
            try:
                for _ in range(2):
                    runs[path]()
                streams = [runs[path]() for _ in range(args.stream_requests)]
            except (RuntimeError, httpx.HTTPError) as exc:
                out.append(StreamRound(round_number, path, 0, 0, 0, False, str(exc)))
                continue
            wrong = [s.tokens for s in streams if s.tokens != args.stream_tokens]
            if wrong:
                note = f"token counts {wrong} (expected {args.stream_tokens})"
            result = StreamRound(
                round_number,
                path,
                statistics.median(s.ttft_ms for s in streams),
                statistics.median(s.tokens_per_s for s in streams),
                statistics.median(
                    s.ttft_ms + (s.tokens - 1) / s.tokens_per_s * 1e3 for s in streams if s.tokens_per_s
                ),
                not note,
                note,
                streams,
            )
            out.append(result)
    texts = {r.path: {s.text for s in r.requests} for r in out}
    if texts.get("core") and texts.get("direct") and texts["core"] != texts["direct"]:
        for r in out:
            r.valid, r.note = False, (r.note + "; " if r.note else "") + "core and direct texts differ"
    for r in out:
        print(
            f"[round {round_number}] [stream {r.path}] TTFT {r.ttft_ms:.2f} ms, "
            f"{r.tokens_per_s:,.0f} tokens/s, whole answer {r.total_ms:.1f} ms, "
            f"{'ok' if r.valid else 'INVALID ' + r.note}",
            flush=True,
        )
    return out


# --------------------------------------------------------------------------- reporting


def per_round_table(results: list[Result], markdown: bool) -> str:
    """Requests/s of every configuration and load, per round, and their median."""
    keys = list(dict.fromkeys((r.server, r.payload) for r in results))
    rounds = sorted({r.round for r in results})
    by = {(r.server, r.payload, r.round): r for r in results}
    rows = []
    for name, payload in keys:
        cells = [
            f"{by[name, payload, n].requests_per_s:,.0f}" if (name, payload, n) in by else "-" for n in rounds
        ]
        values = [by[name, payload, n].requests_per_s for n in rounds if (name, payload, n) in by]
        rows.append([name, payload, *cells, f"{statistics.median(values):,.0f}"])
    headers = ["configuration", "payload", *(f"round {n}" for n in rounds), "median"]
    return rt.table(headers, rows, markdown)


def round_ratios(results: list[Result], payloads: list[Payload], markdown: bool) -> str:
    """Each ratio of PAIRS, round by round."""
    values: dict[tuple[str, str], list[str]] = {}
    for number in sorted({r.round for r in results}):
        for row in rt.ratios([r for r in results if r.round == number], payloads, PAIRS):
            values.setdefault((str(row["payload"]), str(row["ratio"])), []).append(f"{row['value']:.2f}")
    rows = [[payload, ratio, ", ".join(cells)] for (payload, ratio), cells in values.items()]
    return rt.table(["payload", "req/s ratio", "per round"], rows, markdown)


def stream_report(rounds: list[StreamRound], markdown: bool) -> dict[str, Any]:
    if not rounds:
        return {}
    per_round = []
    for number in sorted({r.round for r in rounds}):
        by = {r.path: r for r in rounds if r.round == number}
        if "core" in by and "direct" in by and by["direct"].ttft_ms and by["direct"].tokens_per_s:
            per_round.append(
                [
                    str(number),
                    f"{by['core'].ttft_ms:.2f}",
                    f"{by['direct'].ttft_ms:.2f}",
                    f"{by['core'].ttft_ms / by['direct'].ttft_ms:.2f}",
                    f"{by['core'].tokens_per_s:,.0f}",
                    f"{by['direct'].tokens_per_s:,.0f}",
                    f"{by['core'].tokens_per_s / by['direct'].tokens_per_s:.2f}",
                ]
            )
    headers = ["round", "core TTFT ms", "direct TTFT ms", "TTFT core/direct"]
    headers += ["core tokens/s", "direct tokens/s", "tokens/s core/direct"]
    print("\nstreaming, medians of each round's requests:\n" + rt.table(headers, per_round, markdown))
    summary: dict[str, Any] = {}
    for path in ("core", "direct"):
        mine = [r for r in rounds if r.path == path]
        summary[path] = {
            "ttft_ms": statistics.median(r.ttft_ms for r in mine),
            "tokens_per_s": statistics.median(r.tokens_per_s for r in mine),
            "total_ms": statistics.median(r.total_ms for r in mine),
            "valid": all(r.valid for r in mine),
        }
    core, direct = summary["core"], summary["direct"]
    summary["ttft_core_over_direct"] = core["ttft_ms"] / direct["ttft_ms"] if direct["ttft_ms"] else None
    summary["tokens_per_s_core_over_direct"] = (
        core["tokens_per_s"] / direct["tokens_per_s"] if direct["tokens_per_s"] else None
    )
    rows = [
        [
            path,
            f"{summary[path]['ttft_ms']:.2f}",
            f"{summary[path]['tokens_per_s']:,.0f}",
            f"{summary[path]['total_ms']:.1f}",
            "ok" if summary[path]["valid"] else "INVALID",
        ]
        for path in ("core", "direct")
    ]
    print(
        "\nstreaming, medians of the rounds:\n"
        + rt.table(["path", "TTFT ms", "tokens/s", "whole answer ms", "valid"], rows, markdown)
    )
    if summary["ttft_core_over_direct"] and summary["tokens_per_s_core_over_direct"]:
        print(
            f"\nTTFT core/direct {summary['ttft_core_over_direct']:.2f}, "
            f"tokens/s core/direct {summary['tokens_per_s_core_over_direct']:.2f}"
        )
    return summary


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = rt.method_parser(__doc__, connections=64)
    parser.set_defaults(duration=8)
    parser.add_argument(
        "--only",
        default=",".join(CONFIGURATIONS),
        help=f"comma-separated configurations, in this order (default: all of {','.join(CONFIGURATIONS)})",
    )
    parser.add_argument(
        "--overhead-connections",
        type=int,
        default=16,
        help="wrk -c for the unbatched servers against the bare apps (default 16)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="max_batch_size when batched (default 32)")
    parser.add_argument(
        "--batch-time", type=float, default=0.005, help="max_batch_time (s) when batched (default 0.005)"
    )
    parser.add_argument(
        "--parallel-workers", type=int, default=0, help="core's --parallel-workers (default 0: in process)"
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads in every server and in this process (default 1; 0: torch's default)",
    )
    parser.add_argument(
        "--stream-requests",
        type=int,
        default=20,
        help="generations per path and round (0: no streaming part)",
    )
    parser.add_argument("--stream-tokens", type=int, default=48, help="max_new_tokens when streaming")
    parser.add_argument(
        "--core-python", type=Path, default=rt.REPO / ".venv" / "bin" / "python", help="python running core"
    )
    args = parser.parse_args()
    args.only = rt.comma_list(parser, "--only", args.only, CONFIGURATIONS)
    return args


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "bare":
        return serve_bare(sys.argv[2:])
    args = parse_args()
    os.environ.update(OFFLINE)
    started = time.monotonic()
    if reason := rt.core_skip_reason(args.core_python):
        print(f"error: {reason}", file=sys.stderr)
        return 2
    load_before = rt.check_machine({"wrk": "wrk"})
    if load_before is None:
        return 2
    print(f"load average at start: {load_before:.2f}, {os.cpu_count()} CPUs", flush=True)

    failures: list[str] = []
    results: list[Result] = []
    streams: list[StreamRound] = []
    batch_rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="hf-bench-") as tmp:
        workdir = Path(tmp)
        checkpoints = build_checkpoints(workdir / "checkpoints")
        bodies = payloads(args)
        scripts = {key: rt.write_lua(p, workdir, i, path=p.path) for i, (key, p) in enumerate(bodies.items())}
        streaming = args.stream_requests > 0 and "gpt2-unbatched" in args.only
        direct = Direct(checkpoints["gpt2"], args.torch_threads) if streaming else None
        factories = {name: factory(name, checkpoints, args) for name in args.only}
        seen: Predictions = {}
        rounds = rt.server_rounds(args.only, args.rounds, factories, workdir, args.ready_timeout, failures)
        for round_number, server in rounds:
            model = model_of(server.name)
            for connections in loads(server.name, args):
                load = argparse.Namespace(**{**vars(args), "connections": connections})
                key = (model, connections)
                results += rt.measure(server, [bodies[key]], [scripts[key]], load, seen, round_number, check)
            if not server.name.endswith(("bare", "bare-thread")):
                per_call = rows_per_call(server.port, model)
                if per_call is not None:
                    batch_rows.setdefault(server.name, []).append(per_call)
                    print(
                        f"[round {round_number}] [{server.name}] rows per pipeline call: {per_call:.1f}",
                        flush=True,
                    )
            if direct is not None and server.name == "gpt2-unbatched":
                streams += stream_round(round_number, server.port, direct, args)

    load_after = os.getloadavg()[0]
    print(f"\nload average: {load_before:.2f} at start, {load_after:.2f} at end")
    print("\nrequests/s per round:\n" + per_round_table(results, args.markdown))
    print("\nratios per round:\n" + round_ratios(results, list(bodies.values()), args.markdown))
    summary = rt.medians(results)
    headers = ["configuration", "payload", *rt.RESULT_HEADERS, "rows/call (median)"]
    rows = [
        [
            r.server,
            r.payload,
            *rt.result_cells(r),
            f"{statistics.median(batch_rows[r.server]):.1f}" if r.server in batch_rows else "-",
        ]
        for r in summary
    ]
    print("\nmedian round per configuration:\n" + rt.table(headers, rows, args.markdown))
    ratio_rows = rt.ratios(summary, list(bodies.values()), PAIRS)
    cells = [[str(r["payload"]), str(r["ratio"]), f"{r['value']:.2f}"] for r in ratio_rows]
    print("\n" + rt.table(["payload", "req/s ratio (medians)", "value"], cells, args.markdown))
    stream_summary = stream_report(streams, args.markdown)
    elapsed = time.monotonic() - started
    print(f"\ntotal time: {elapsed:.0f} s")
    if args.output:
        document = rt.wrk_results_document(args, {}, load_before, results, failures, elapsed)
        document["method"] |= {
            "configurations": args.only,
            "max_batch_size": args.batch_size,
            "max_batch_time": args.batch_time,
            "parallel_workers": args.parallel_workers,
            "torch_threads": args.torch_threads,
            "stream_requests": args.stream_requests,
            "stream_tokens": args.stream_tokens,
        }
        document["environment"]["load_average_after"] = load_after
        document |= {
            "rows_per_call": batch_rows,
            "ratios_of_medians": ratio_rows,
            "streaming": {"rounds": [asdict(r) for r in streams], "medians": stream_summary},
        }
        args.output.write_text(json.dumps(document, indent=2) + "\n")
    valid = all(r.valid for r in results) and all(r.valid for r in streams)
    return 1 if failures or not valid else 0


if __name__ == "__main__":
    sys.exit(main())
