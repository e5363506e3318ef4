"""Whether two runs were judged the same way, and if not, what differs.

A drop in score means the model changed only when the same judge graded both runs with the same rubric.
``provenance_differences`` is the one place that decides "judged differently"; the gate refuses to decide
on any difference it names. It compares what each run's manifest records today (the judge's model, the
rubric hash, the judge's configuration snapshot and the output mode it settled on); per-judgment
provenance (each verdict's rubric hash and judge fingerprint) plugs in here.
"""

from __future__ import annotations

from typing import Any

from evals.records import RunManifest

NOT_IDENTITY = frozenset({
    "max_concurrency", "timeout_s", "max_retries", "api_key_env",
    "price_in_per_mtok", "price_out_per_mtok", "price_per_hour",
})  # fmt: skip
"""Judge settings that change how fast, how patiently or at what price it is called, never its verdicts."""


def judge_identity(m: RunManifest) -> dict[str, Any]:
    """The judge settings of a run that can change a verdict (its config snapshot minus ``NOT_IDENTITY``)."""
    snapshot = m.config.get("judge") or {}
    identity = {k: v for k, v in snapshot.items() if k not in NOT_IDENTITY}
    identity.pop("structured", None)  # the configured wish; the mode in effect is compared below
    identity.pop("rubric", None)  # the rubric is compared by its hash, whatever its file is called
    return identity


def _shown(value: Any) -> bool:
    """Short scalars are quoted in a difference; anything else is only named."""
    return (
        value is None
        or isinstance(value, bool | int | float)
        or (isinstance(value, str) and len(value) <= 80)
    )


def _mode(m: RunManifest) -> str | None:
    mode = m.config.get("structured")
    return mode if isinstance(mode, str) else None


def provenance_differences(a: RunManifest, b: RunManifest) -> list[str]:
    """What differs in how runs ``a`` and ``b`` were judged, one phrase each; empty when nothing does."""
    out = []
    if a.judge_model != b.judge_model:
        out.append(f"judge model {a.judge_model!r} vs {b.judge_model!r}")
    if a.rubric_hash != b.rubric_hash:
        out.append(f"rubric {a.rubric_name}@{a.rubric_hash} vs {b.rubric_name}@{b.rubric_hash}")
    ja, jb = judge_identity(a), judge_identity(b)
    for key in sorted(ja.keys() | jb.keys()):
        if key != "model" and ja.get(key) != jb.get(key):  # the model was named above
            va, vb = ja.get(key), jb.get(key)
            if _shown(va) and _shown(vb):
                out.append(f"judge setting {key} {va!r} vs {vb!r}")
            else:  # a structure (extra_body, stop) may be long or carry server-specific values: name it only
                out.append(f"judge setting {key} differs")
    if _mode(a) != _mode(b):
        out.append(f"judge output mode {_mode(a)!r} vs {_mode(b)!r}")
    return out
