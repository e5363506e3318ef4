"""Rollback: the model configuration of an approved run, shown or written back into evals.yaml."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from evals.errors import ConfigError
from evals.records import RunManifest
from evals.secrets import safe_url
from evals.userfiles import load_yaml

NEW_FILE_MODE = 0o600
"""Permissions of a config file that rollback creates: it names key variables, and may one day hold more."""


def restore_model(run: RunManifest, config_path: Path, write: bool) -> tuple[str, Path | None]:
    """The YAML of the run's model endpoint; with ``write``, also put it under ``models:`` in the config.

    The run's snapshot holds no key (only the name of the key variable); credentials in its ``base_url``
    (stored by versions before they were left out) are dropped here too, so neither the output nor the
    rewritten file carries them. Comments in the config file are not preserved by the rewrite; the
    previous file is kept as ``.bak``. The file keeps its permissions and is replaced atomically.
    """
    endpoint = run.config.model.model_dump(mode="json")
    if not endpoint:
        raise ConfigError(f"run {run.run_id} has no model configuration stored")
    if isinstance(endpoint.get("base_url"), str):
        endpoint["base_url"] = safe_url(endpoint["base_url"])
    text = yaml.safe_dump({"models": {run.model_name: endpoint}}, sort_keys=False)
    if not write:
        return text, None
    target = (
        config_path.resolve() if config_path.is_symlink() else config_path
    )  # rewrite the file, keep the link
    data: Any = {}
    mode = NEW_FILE_MODE
    if target.exists():
        original = target.read_bytes() if target.is_file() else b""
        data = load_yaml(target, error=ConfigError) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{config_path}:1: expected a mapping with 'models' and 'judges'")
        mode = stat.S_IMODE(target.stat().st_mode)
        _write_atomic(target.with_suffix(target.suffix + ".bak"), original, mode)
    data = _plain(data)
    if not isinstance(data.get("models"), dict):
        data["models"] = {}
    data["models"][run.model_name] = endpoint
    _write_atomic(target, yaml.safe_dump(data, sort_keys=False).encode(), mode)
    return text, config_path


def _write_atomic(path: Path, content: bytes, mode: int) -> None:
    """Write ``content`` to ``path`` through a temporary file renamed over it, created with ``mode``.

    The temporary file is created with the final permissions from the start (never readable by others
    for a moment), and removed if anything fails.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode & 0o777)
        try:
            with os.fdopen(fd, "wb") as stream:
                os.fchmod(stream.fileno(), mode)  # the umask may have narrowed what os.open set
                stream.write(content)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        # Name the file the user knows (an error of os.replace names the temporary file, which means nothing).
        raise OSError(exc.errno, f"cannot write: {exc.strerror or exc}", str(path)) from exc


def _plain(value: Any) -> Any:
    """Parsed YAML with plain dicts, which ``yaml.safe_dump`` can write."""
    if isinstance(value, dict):  # YamlMapping too
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
