"""The bundled model as a judge every command can name: ``--judge local``.

``local`` is the judge entry of that name in evals.yaml (``evals init`` scaffolds it: the bundled
SmolLM2-135M at http://127.0.0.1:8000/v1, where ``evals serve-local`` serves), or, in a project without
one, that same entry built in. A command whose judge is ``local`` (named, the default, a panel member or a
``restricted_judge``) grades on the server at the entry's URL when it answers there with the entry's
model; when nothing does and the entry is the bundled model, the command starts the bundled server in this
process, as ``evals demo`` does, and stops it when it ends. The server is on loopback: inside the
perimeter, so restricted items may be graded by it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from evals.cli.common import err, plain
from evals.config import Config, JudgeEndpoint
from evals.errors import LocalModelError
from evals.localmodel import (
    KEY_ENV,
    MODEL_ALIAS,
    PROMPT_TOKENS_JUDGE,
    LocalServer,
    ServerOptions,
    local_server,
    serves,
)
from evals.secrets import safe_url

LOCAL_JUDGE = "local"
"""The name every project can give ``--judge``: the bundled model grading."""
LOCAL_URL = "http://127.0.0.1:8000/v1"
"""Where ``evals serve-local`` serves by default, and the built-in ``local`` judge looks first."""
JUDGE_MAX_TOKENS = 256
"""Bound on the local judge's verdict: a small model may never close its JSON, and must not run on."""
JUDGE_CONCURRENCY = 1
"""Grading requests in flight to the bundled model, and the slots of a judge server started in process.
Grading is prompt-bound (~900 tokens, most of them the rubric's, against ~30 of verdict): one request at a
time reuses that cached prefix from verdict to verdict, so only the first prompt is read whole and its
verdict comes first; eight at once each read it whole, side by side. Measured on 2 loaded cores: the first
of 16 verdicts in 15-23 s on one slot against 156 s at 8 in flight, all 16 sooner too (evals docs
benchmarks)."""
ANSWER_TOKENS = 1024
"""Room for the graded answer in each slot of a judge server started in process, when the command does not
know how long its answers are."""
CONTEXT_TRAINED = 8192
"""SmolLM2-135M's trained context: no slot is made longer."""


def local_judge_endpoint(server: LocalServer) -> JudgeEndpoint:
    """The bundled model as an OpenAI-compatible judge: strict json_schema verdicts, bounded length, one at
    a time (``JUDGE_CONCURRENCY``)."""
    return JudgeEndpoint(
        provider="openai",
        base_url=server.base_url,
        model=server.model,
        api_key_env=KEY_ENV,
        structured="auto",
        temperature=0.0,
        max_tokens=JUDGE_MAX_TOKENS,
        max_concurrency=JUDGE_CONCURRENCY,
        fingerprint=server.fingerprint,
    )


def builtin_local_judge() -> JudgeEndpoint:
    """The ``local`` judge of a project whose evals.yaml has none: the scaffolded entry."""
    return JudgeEndpoint(
        provider="openai",
        base_url=LOCAL_URL,
        model=MODEL_ALIAS,
        api_key_env=KEY_ENV,
        structured="auto",
        temperature=0.0,
        max_tokens=JUDGE_MAX_TOKENS,
        max_concurrency=JUDGE_CONCURRENCY,
        external=False,  # as the validation of evals.yaml resolves a loopback URL
    )


def add_local_judge(config: Config, *names: str | None) -> Config:
    """``config`` with the built-in ``local`` judge when one of ``names`` (None: the default judge) asks for
    it and evals.yaml has none; ``config`` itself otherwise. Starts nothing."""
    asked = {name if name is not None else config.default_judge for name in names}
    if LOCAL_JUDGE not in asked or LOCAL_JUDGE in config.judges:
        return config
    return config.model_copy(update={"judges": {**config.judges, LOCAL_JUDGE: builtin_local_judge()}})


def _uses_local(config: Config, names: tuple[str | None, ...]) -> bool:
    for name in names:
        resolved, judge = config.judge(name)
        members = judge.panel.members if judge.panel is not None else []
        if LOCAL_JUDGE in (resolved, *members, judge.restricted_judge):
            return True
    return False


def _bundled(judge: JudgeEndpoint) -> bool:
    """Whether the entry asks for the bundled model on this machine (so a server started here is it)."""
    return judge.provider == "openai" and judge.model == MODEL_ALIAS and not judge.is_external()


@contextmanager
def serve_local_judge(
    config: Config, *names: str | None, answer_tokens: int = ANSWER_TOKENS
) -> Iterator[Config]:
    """The config a command grades with, while it runs: when its judge ``names`` use ``local`` and nothing
    serves the entry's model at its URL, the bundled server runs in this process for the block (its
    ``base_url`` and fingerprint put into the entry), and stops after it. ``answer_tokens`` sizes the room
    for the graded answer in each of that server's slots."""
    config = add_local_judge(config, *names)
    if not _uses_local(config, names):
        yield config
        return
    entry = config.judges[LOCAL_JUDGE]
    where = safe_url(entry.base_url) if entry.base_url else "(no base_url)"
    if entry.base_url is not None and entry.model is not None and serves(entry.base_url, entry.model):
        err.print(
            plain(f"judge {LOCAL_JUDGE}: {entry.model} answers at {where}; grading there"), soft_wrap=True
        )
        yield config
        return
    if not _bundled(entry):  # the team's own model: unreachable, the command says so as for any judge
        yield config
        return
    slots = JUDGE_CONCURRENCY
    context = min(CONTEXT_TRAINED, PROMPT_TOKENS_JUDGE + answer_tokens + entry.max_tokens)
    err.print(
        plain(
            f"judge {LOCAL_JUDGE}: nothing serves {entry.model} at {where}; starting the bundled "
            f"SmolLM2-135M-Instruct in this process ({slots} slot{'s' if slots != 1 else ''} of {context} tokens)…"
        ),
        soft_wrap=True,
    )
    started = time.monotonic()
    with ExitStack() as running:
        try:
            server = running.enter_context(local_server(ServerOptions(slots=slots, ctx_per_slot=context)))
        except LocalModelError as exc:
            raise LocalModelError(
                f"judge {LOCAL_JUDGE}: nothing serves {entry.model} at {where} and the bundled model cannot "
                f"start in this process: {exc}; or start `evals serve-local` first"
            ) from None
        err.print(
            plain(f"judge {LOCAL_JUDGE}: ready at {server.base_url} in {time.monotonic() - started:.1f} s"),
            soft_wrap=True,
        )
        # as many requests in flight as slots: queued in the server, a verdict's latency would count the wait
        served = entry.model_copy(
            update={"base_url": server.base_url, "fingerprint": server.fingerprint, "max_concurrency": slots}
        )
        yield config.model_copy(update={"judges": {**config.judges, LOCAL_JUDGE: served}})
