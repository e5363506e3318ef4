"""Rollback: the model configuration of an approved run, shown or written back into evals.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from evals.errors import ConfigError
from evals.records import RunManifest


def restore_model(run: RunManifest, config_path: Path, write: bool) -> tuple[str, Path | None]:
    """The YAML of the run's model endpoint; with ``write``, also put it under ``models:`` in the config.

    The run's snapshot holds no secrets (only the name of the key variable), so writing it back is safe.
    Comments in the config file are not preserved by the rewrite; the previous file is kept as ``.bak``.
    """
    endpoint = run.config.get("model")
    if not endpoint:
        raise ConfigError(f"run {run.run_id} has no model configuration stored")
    text = yaml.safe_dump({"models": {run.model_name: endpoint}}, sort_keys=False)
    if not write:
        return text, None
    data: dict[str, Any] = {}
    if config_path.exists():
        data = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        config_path.with_suffix(config_path.suffix + ".bak").write_text(
            config_path.read_text(encoding="utf-8")
        )
    data.setdefault("models", {})[run.model_name] = endpoint
    tmp = config_path.with_suffix(config_path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    tmp.replace(config_path)
    return text, config_path
