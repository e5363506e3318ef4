"""Whether two runs were judged the same way, and if not, what differs.

A drop in score means the model changed only when the same judge graded both runs with the same rubrics.
``provenance_differences`` is the one place that decides "judged differently"; the gate refuses to decide
on any difference it names. It compares what each run's manifest records (the judge's model, every rubric
its items name, the judge's configuration snapshot and the output mode it settled on) and what its
verdicts record (``JudgingProvenance``: the judges' fingerprints, the model ids their APIs reported, the
rubric versions that graded).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from evals.records import JudgeSnapshot, JudgingProvenance, RunManifest, content_hash
from evals.store.protocol import RunStore

NOT_IDENTITY = frozenset({
    "max_concurrency", "requests_per_minute", "tokens_per_minute", "timeout_s", "max_retries", "api_key_env",
    "price_in_per_mtok", "price_out_per_mtok", "price_per_hour", "judging", "batch_discount", "batch_poll_s",
})  # fmt: skip
"""Judge settings that change how fast, how patiently or at what price it is called (one call per verdict or
a vendor's batch), never its verdicts."""


def rubrics_hash(labels: Iterable[str]) -> str:
    """A run's ``rubric_hash``: that of its one rubric, or a hash of all its rubrics (``name@hash``,
    sorted) when its items name several, so that editing any of them changes it."""
    unique = sorted(set(labels))
    if len(unique) == 1:
        return unique[0].rpartition("@")[2]  # as runs of one rubric always recorded it
    return content_hash(unique) if unique else ""


def judge_identity(m: RunManifest) -> dict[str, Any]:
    """The judge settings of a run that can change a verdict (its config snapshot minus ``NOT_IDENTITY``);
    for a panel, every member's as ``member.setting``, with ``panel.members`` and ``panel.aggregate``."""
    return _identity(m.config.judge)


def _identity(judge: JudgeSnapshot) -> dict[str, Any]:
    # The snapshot as recorded: a setting an older run did not record is absent, not a default.
    if judge.members is not None:  # a panel (evals.judge.panel): each member's settings count
        panel = judge.panel.model_dump(mode="json") if judge.panel is not None else {}
        identity = {f"panel.{k}": v for k, v in panel.items()}
        for name, member in judge.members.items():
            identity.update({f"{name}.{k}": v for k, v in _identity(member).items()})
        return identity
    snapshot = judge.model_dump(mode="json")
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
    return m.config.structured


def _rubric_sets(a: RunManifest, b: RunManifest) -> list[str]:
    """The rubrics (by name) whose versions differ, or that only one run used."""
    if not a.rubrics or not b.rubrics:  # a run from before rubric sets were kept: its one rubric
        if a.rubric_hash == b.rubric_hash:
            return []
        return [f"rubric {a.rubric_name}@{a.rubric_hash} vs {b.rubric_name}@{b.rubric_hash}"]
    va = dict(label.rpartition("@")[::2] for label in a.rubrics)
    vb = dict(label.rpartition("@")[::2] for label in b.rubrics)
    out = []
    for name in sorted(va.keys() | vb.keys()):
        if name not in vb:
            out.append(f"rubric {name}@{va[name]} used only by {a.run_id}")
        elif name not in va:
            out.append(f"rubric {name}@{vb[name]} used only by {b.run_id}")
        elif va[name] != vb[name]:
            out.append(f"rubric {name}@{va[name]} vs {name}@{vb[name]}")
    return out


def _listed(values: frozenset[str]) -> str:
    # Reported model ids come from a server: quoted, and cut short so a hostile one cannot flood a report.
    return ", ".join(repr(v[:60] + ("…" if len(v) > 60 else "")) for v in sorted(values))


def _verdict_differences(pa: JudgingProvenance, pb: JudgingProvenance) -> list[str]:
    """What the two runs' verdicts say differently; a run that recorded nothing (older) is not compared."""
    out = []
    if pa.fingerprints and pb.fingerprints and pa.fingerprints != pb.fingerprints:
        out.append(f"judge fingerprint {_listed(pa.fingerprints)} vs {_listed(pb.fingerprints)}")
    if pa.model_ids and pb.model_ids and pa.model_ids != pb.model_ids:
        out.append(f"judge model id reported by its API {_listed(pa.model_ids)} vs {_listed(pb.model_ids)}")
    if pa.rubric_hashes and pb.rubric_hashes and pa.rubric_hashes != pb.rubric_hashes:
        out.append(
            f"rubric versions of the verdicts {_listed(pa.rubric_hashes)} vs {_listed(pb.rubric_hashes)}"
        )
    return out


def provenance_differences(
    a: RunManifest,
    b: RunManifest,
    pa: JudgingProvenance | None = None,
    pb: JudgingProvenance | None = None,
) -> list[str]:
    """What differs in how runs ``a`` and ``b`` were judged, one phrase each; empty when nothing does.

    ``pa`` and ``pb``, the runs' verdicts' provenance (``RunStore.judging_provenance``), add what the
    verdicts themselves recorded.
    """
    out = []
    if a.judge_model != b.judge_model:
        out.append(f"judge model {a.judge_model!r} vs {b.judge_model!r}")
    out += _rubric_sets(a, b)
    ja, jb = judge_identity(a), judge_identity(b)
    for key in sorted(ja.keys() | jb.keys()):
        if key != "model" and not key.endswith(".model") and ja.get(key) != jb.get(key):  # named above
            va, vb = ja.get(key), jb.get(key)
            if _shown(va) and _shown(vb):
                out.append(f"judge setting {key} {va!r} vs {vb!r}")
            else:  # a structure (extra_body, stop) may be long or carry server-specific values: name it only
                out.append(f"judge setting {key} differs")
    if _mode(a) != _mode(b):
        out.append(f"judge output mode {_mode(a)!r} vs {_mode(b)!r}")
    if pa is not None and pb is not None:
        verdicts = _verdict_differences(pa, pb)
        if any(d.startswith("rubric") for d in out):  # the rubric edit is named already, by name
            verdicts = [d for d in verdicts if not d.startswith("rubric versions")]
        out += verdicts
    return out


def judged_differently(store: RunStore, a: RunManifest, b: RunManifest) -> list[str]:
    """``provenance_differences`` of two stored runs, their verdicts included (one query per run)."""
    return provenance_differences(
        a, b, store.judging_provenance(a.run_id), store.judging_provenance(b.run_id)
    )
