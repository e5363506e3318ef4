"""Keys and text at rest, the variants the first hostile pass did not name: every text a run stores is sealed
(multi-turn items, metadata, reasoning, the model's and the judge's error bodies, reruns, workers, batches);
a malformed EVALS_STORE_KEY in any shape is one line before a store exists; a wrong key is refused by every
command that opens the store; a command that hands a run's text on (to a judge, to people, into training
data, into a canary's anchors) refuses a purged run or an encrypted one read without the key instead of
sending ``(purged)`` or ``(encrypted)`` as if it were the text; an interrupted rekey leaves each run whole
and the newest key the store's."""

import base64
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from cryptography.fernet import Fernet

from evals.cli import main
from evals.fakes import FakeAnthropic, FakeOpenAI, Reply, grade_by_reference, last_user_text
from evals.store import Store
from evals.store import rekey as rekeying
from evals.store.crypto import TextCodec

ROOT = Path(__file__).parent.parent
KEY, OLD, WRONG = (Fernet.generate_key().decode() for _ in range(3))
WRONG_KEY_LINE = "EVALS_STORE_KEY does not match the key this store's text was encrypted with"
MARKS = ("QSECRET", "REFSECRET", "METASECRET", "TURNSECRET", "ANSSECRET", "REASONSECRET", "RATSECRET",
         "ECHOSECRET")  # fmt: skip
"""A word of each kind of text a run stores; none may be in the database in clear."""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _model(body):
    question = last_user_text(body)
    if "MFAIL" in question:
        raise ValueError(f"cannot answer {question}")  # the fake's 500 body quotes the prompt
    return Reply(f"ANSSECRET {question.split()[-1]}", reasoning="REASONSECRET thinking")


def _judge(body):
    text = last_user_text(body)
    if "JFAIL" in text:
        raise ValueError(f"cannot grade {text[:300]}")  # the judge's error body quotes its prompt
    verdict = grade_by_reference(body)
    return {**verdict, "rationale": f"RATSECRET {verdict['rationale']}"}


def _items(n: int):
    items = [
        {"id": f"q{i}", "area": "ab"[i % 2], "question": f"QSECRET {i}", "reference": f"ANSSECRET {i}",
         "metadata": {"note": "METASECRET"}}
        for i in range(n)
    ]  # fmt: skip
    items[0] = {**items[0], "reference": "REFSECRET 0"}
    items[1]["question"] = "QSECRET MFAIL ECHOSECRET 1"
    items[2]["question"] = "QSECRET JFAIL ECHOSECRET 2"
    items[3] = {
        "id": "q3", "area": "b", "reference": "ANSSECRET 3",
        "messages": [{"role": "user", "content": "TURNSECRET hi"}, {"role": "assistant", "content": "TURNSECRET ok"},
                     {"role": "user", "content": "QSECRET 3"}],
    }  # fmt: skip
    return items


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project with a fake model and a fake Anthropic judge; yields (folder, model server, judge server)."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key-0000")
    with (
        FakeOpenAI(_model, model_id="m-test") as model,
        FakeAnthropic(_judge, model_id="claude-test") as judge,
    ):
        config = {
            "models": {"local": {"base_url": model.url, "model": "m", "max_retries": 0}},
            "judges": {"claude": {"provider": "anthropic", "base_url": judge.url, "model": "claude-test",
                                  "max_retries": 0}},
            "judges_dir": str(ROOT / "judges"),
        }  # fmt: skip
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        (tmp_path / "suite.jsonl").write_text("".join(json.dumps(i) + "\n" for i in _items(8)))
        yield tmp_path, model, judge


def _stored_values(store):
    """Every value of every table, as the database holds it."""
    tables = store._execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        if store.dialect == "sqlite"
        else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    ).fetchall()
    return [repr(row) for (t,) in tables for row in store._execute(f'SELECT * FROM "{t}"').fetchall()]


def test_every_text_of_runs_reruns_workers_and_batches_is_sealed(project, store_url, monkeypatch):
    folder, _, _ = project
    monkeypatch.setenv("EVALS_STORE", store_url)
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    steps = [
        ("run", "--suite", "suite.jsonl", "--run-id", "r1", "--judge", "claude"),
        ("judge", "rerun", "r1", "--judge", "claude", "--repeats", "2", "--run-id", "rr"),
        ("run", "--suite", "suite.jsonl", "--run-id", "w1", "--judge", "claude", "--plan-only"),
        ("worker", "w1"),
        ("run", "--suite", "suite.jsonl", "--run-id", "r2", "--judge", "claude"),  # the canary re-judges
    ]
    for step in steps:
        done = invoke(*step)
        assert done.exit_code == 0, (step, done.output)
    config = yaml.safe_load((folder / "evals.yaml").read_text())
    config["judges"]["claude"]["judging"] = "batch"
    (folder / "evals.yaml").write_text(yaml.safe_dump(config))
    done = invoke("run", "--suite", "suite.jsonl", "--run-id", "b1", "--judge", "claude")
    assert done.exit_code == 0, done.output
    with Store(folder / "reports") as store:
        values = _stored_values(store)
        rows = {r.id: r for r in store.results("r1")}
        anchors = store._execute("SELECT count(*) FROM canary_anchors").fetchone()[0]
    assert "ECHOSECRET" in rows["q1"].error and "ECHOSECRET" in rows["q2"].judge_error  # echoed, and kept
    assert rows["q3"].reasoning == "REASONSECRET thinking" and anchors > 0
    for mark in MARKS:
        assert not any(mark in v for v in values), mark
    if not store_url.startswith("postgresql"):
        raw = b"".join(p.read_bytes() for p in Path(store_url).parent.glob("evals.db*"))
        assert not any(mark.encode() in raw for mark in MARKS)


# -- a malformed key ------------------------------------------------------------------------------------

_RAW = base64.urlsafe_b64decode(KEY)
MALFORMED = {
    "short": "abc",
    "not base64": "!" * 44,
    "31 bytes": base64.urlsafe_b64encode(b"x" * 31).decode(),
    "33 bytes": base64.urlsafe_b64encode(b"x" * 33).decode(),
    "hex": _RAW.hex(),
    "unpadded": KEY.rstrip("="),
    "not ascii": "ключ" * 11,
    "only commas": ",,,",
    "blanks": "   ",
    "good then bad": f"{KEY},abc",
    "bad then good": f"abc,{KEY}",
    "quoted": f'"{KEY}"',
    "broken across lines": f"{KEY[:20]}\n{KEY[20:]}",
    "two keys, a blank between": f"{KEY} {OLD}",  # read as KEY alone before: OLD silently dropped
    "two keys, a semicolon between": f"{KEY};{OLD}",
}


@pytest.mark.parametrize("value", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_key_is_one_line_before_any_store_exists(tmp_path, monkeypatch, value):
    (tmp_path / "suite.jsonl").write_text(
        json.dumps({"id": "q", "area": "a", "question": "Q?", "reference": "1"})
    )
    monkeypatch.setenv("EVALS_STORE_KEY", value)
    for args in (("run", "--suite", "suite.jsonl", "--judge", "offline"), ("runs", "list"),
                 ("store", "copy", tmp_path / "a.db", tmp_path / "b.db")):  # fmt: skip
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.startswith("error: EVALS_STORE_KEY is not a Fernet key"), result.output
        assert result.output.count("\n") == 1, result.output
        assert not any(part in result.output for part in (KEY, OLD, KEY[:20], "ключ"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "suite.jsonl"]  # no store, no reports


def test_keys_written_as_keygen_prints_them_are_accepted():
    # Surrounding blanks (an env file's trailing newline) and the standard base64 alphabet: the same key.
    for value in (f"{KEY}\n", f" {KEY} , {OLD} ", base64.b64encode(_RAW).decode()):
        assert TextCodec(value).open(TextCodec(KEY).seal("x")) == "x"


# -- a wrong key, every command that opens the store ----------------------------------------------------


def test_a_wrong_key_is_refused_by_every_command_before_it_writes(project, store_url, monkeypatch):
    folder, model, judge = project
    monkeypatch.setenv("EVALS_STORE", store_url)
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    assert invoke("run", "--suite", "suite.jsonl", "--run-id", "first", "--judge", "claude").exit_code == 0
    assert invoke("run", "--suite", "suite.jsonl", "--run-id", "plan", "--plan-only").exit_code == 0
    export = folder / "exports"
    export.mkdir()
    (folder / "reports" / "runs" / "first").rename(export / "first")
    (folder / "filled.jsonl").write_text(
        json.dumps({"id": "first/q0/0", "human_score": 4, "rater": "ann"}) + "\n"
    )
    with Store(folder / "other", url=str(folder / "other" / "evals.db")) as other:
        other.check_key()  # a store of its own under KEY
    calls = model.count() + judge.count()
    with Store(folder / "reports") as store:
        before = _stored_values(store)
    monkeypatch.setenv("EVALS_STORE_KEY", WRONG)
    commands = [
        ("run", "--suite", "suite.jsonl", "--run-id", "second", "--judge", "claude"),
        ("run", "--resume", "first"),
        ("worker", "plan"),
        ("judge", "rerun", "first", "--judge", "claude"),
        ("judge", "canary", "reset", "--judge", "claude", "--suite", "suite", "--reason", "x"),
        ("judge", "calibrate", "--labels", "demo", "--judge", "claude"),
        ("import", export),
        ("store", "copy", folder / "other", store_url),
        ("store", "copy", store_url, folder / "copy"),
        ("review", "import", folder / "filled.jsonl", "--run", "first"),
        ("review", "export", "first", "--random", "2", "--out", folder / "review"),
        ("baseline", "set", "first", "--note", "n"),
        ("runs", "exclude", "first"),
        ("purge", "--run", "first"),
        ("export", "weak", "first", "--out", folder / "weak.jsonl"),
        ("store", "rekey"),
    ]
    for args in commands:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert WRONG_KEY_LINE in result.output and result.output.count("\n") <= 2, (args, result.output)
        assert KEY not in result.output and WRONG not in result.output
    assert model.count() + judge.count() == calls
    with Store(folder / "reports") as store:
        assert _stored_values(store) == before
    assert not any((folder / name).exists() for name in ("copy", "review", "weak.jsonl"))


# -- text that is not there is never handed on ----------------------------------------------------------


def _two_runs(project, monkeypatch, store_url):
    """A baseline and a worse candidate of a 24-item suite, encrypted, gate confirmation on."""
    folder, model, _ = project
    monkeypatch.setenv("EVALS_STORE", store_url)
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    items = [
        {"id": f"q{i}", "area": "ab"[i % 2], "question": f"Q {i}", "reference": str(i)} for i in range(24)
    ]
    (folder / "suite.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    model.responder = lambda body: last_user_text(body).split()[-1]
    assert invoke("run", "--suite", "suite.jsonl", "--run-id", "base", "--judge", "claude").exit_code == 0
    assert invoke("baseline", "set", "base").exit_code == 0
    model.responder = lambda body: "wrong"
    assert invoke("run", "--suite", "suite.jsonl", "--run-id", "cand", "--judge", "claude").exit_code == 0
    (folder / "policy.yaml").write_text("confirm_repeats: 3\n")


HANDING_ON = {
    "judge rerun": ("judge", "rerun", "cand", "--judge", "claude", "--repeats", "2"),
    "review export": ("review", "export", "cand", "--random", "4", "--out", "review"),
    "review export of the urgent": ("review", "export", "cand", "--out", "review"),
    "export weak": ("export", "weak", "cand", "--out", "weak.jsonl"),
    "export weak preference": ("export", "weak", "cand", "--format", "preference", "--out", "weak.jsonl"),
    "canary reset --from-latest": ("judge", "canary", "reset", "--judge", "claude", "--suite", "suite",
                                   "--from-latest"),
}  # fmt: skip


@pytest.mark.parametrize("gone", ["no key", "purged"])
def test_text_that_is_not_there_is_never_sent_or_written_as_if_it_were(project, store_url, monkeypatch, gone):
    folder, model, judge = project
    _two_runs(project, monkeypatch, store_url)
    if gone == "purged":
        for run_id in ("base", "cand"):
            assert invoke("purge", "--run", run_id, "--include-baselines").exit_code == 0
    else:
        monkeypatch.delenv("EVALS_STORE_KEY")
    calls = model.count() + judge.count()
    with Store(folder / "reports") as store:
        sets = store._execute("SELECT set_id, active FROM canary_sets").fetchall()
    why = "was purged" if gone == "purged" else "is stored encrypted and EVALS_STORE_KEY is not set"
    for name, args in HANDING_ON.items():
        result = invoke(*args)
        assert result.exit_code == 2, (name, result.output)
        last = result.output.strip().splitlines()[-1]
        assert last.startswith("error: ") and why in last, (name, result.output)
    # The gate still decides on the stored scores; its confirmation says why it asked nothing.
    gate = invoke("gate", "--candidate", "cand", "--baseline", "base", "--policy", "policy.yaml")
    assert gate.exit_code == 1, gate.output
    assert f"confirming before failing, run cand: not confirmed: run cand {why}" in gate.output
    assert model.count() + judge.count() == calls  # not one call with (encrypted) or (purged) in it
    assert not (folder / "review").exists() and not (folder / "weak.jsonl").exists()
    with Store(folder / "reports") as store:
        assert store._execute("SELECT set_id, active FROM canary_sets").fetchall() == sets  # none retired


def test_a_run_planned_without_the_key_and_answered_with_it_is_known_to_be_encrypted(tmp_path, monkeypatch):
    from builders import make_run

    from evals.store.retention import has_sealed_text

    with Store(tmp_path) as store:
        make_run(store, "r01", {"a-1": [4]}, unanswered=("a-1",))  # items stored in clear
        monkeypatch.setenv("EVALS_STORE_KEY", KEY)
        from evals.records import Answer

        store.save_answer(Answer("r01", "a-1", 0, "ANSSECRET", 1, 1, 1.0, "m"))
        assert has_sealed_text(store, "r01")


# -- an interrupted rekey ---------------------------------------------------------------------------------


def test_an_interrupted_rekey_leaves_whole_runs_and_the_newest_key_the_stores(open_store, monkeypatch):
    from builders import make_run

    scores = {f"a-{i}": [4] for i in range(3)}
    monkeypatch.setenv("EVALS_STORE_KEY", OLD)
    with open_store() as store:
        for run_id in ("r01", "r02", "r03"):
            make_run(store, run_id, scores, answers={k: f"ANSSECRET {k}" for k in scores})
    monkeypatch.setenv("EVALS_STORE_KEY", f"{KEY},{OLD}")
    written = rekeying._write
    moves = []

    def dies_in_the_second_run(store, updates):
        moves.append(updates)
        if len(moves) == 2:  # half of the run written, then the process is stopped
            with store.backend.transaction():
                store.backend.executemany(*updates[0])
                raise KeyboardInterrupt
        written(store, updates)

    monkeypatch.setattr(rekeying, "_write", dies_in_the_second_run)
    with open_store() as store, pytest.raises(KeyboardInterrupt):
        rekeying.rekey_store(store)
    monkeypatch.setattr(rekeying, "_write", written)
    new = TextCodec(KEY)
    with open_store() as store:
        under_new = {
            run_id: {new.opens(v) for (v,) in store._execute("SELECT text FROM answers WHERE run_id = ?", (run_id,))}
            for run_id in ("r01", "r02", "r03")
        }  # fmt: skip
    assert under_new == {"r01": {True}, "r02": {False}, "r03": {False}}  # each run whole, under one key
    monkeypatch.setenv("EVALS_STORE_KEY", OLD)  # a machine on the old key alone would read r01 in part
    with open_store() as store, pytest.raises(Exception, match="does not match the key"):
        store.check_key()
    monkeypatch.setenv("EVALS_STORE_KEY", f"{KEY},{OLD}")
    with open_store() as store:
        assert rekeying.rekey_store(store).unreadable == {}
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    with open_store() as store:
        assert {next(iter(store.results(r))).answer for r in ("r01", "r02", "r03")} == {"ANSSECRET a-0"}


# -- copies and imports ---------------------------------------------------------------------------------


def test_copy_and_import_without_the_key_say_what_they_store_in_clear(tmp_path, monkeypatch):
    from builders import make_run

    source, target = tmp_path / "src" / "evals.db", tmp_path / "reports" / "evals.db"
    with Store(source.parent, url=str(source)) as store:
        make_run(store, "r01", {"a-1": [4]}, answers={"a-1": "ANSSECRET"})
        store.export_jsonl("r01")
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    with Store(source.parent, url=str(source)) as store:
        store.check_key()  # a key was used on the clear source once (a copy from it, a report): it holds none
    with Store(target.parent, url=str(target)) as store:
        make_run(store, "t01", {"a-1": [4]})  # the target encrypts
    monkeypatch.delenv("EVALS_STORE_KEY")
    copied = invoke("store", "copy", source, target)
    assert copied.exit_code == 0, copied.output  # refused before: "encrypts its text" of a store holding none
    assert (
        "this store encrypts its text but EVALS_STORE_KEY is not set here: the copied runs' text"
        in copied.output
    )
    imported = invoke("import", source.parent / "runs", "--reports", target.parent)
    assert imported.exit_code == 0, imported.output
    assert "EVALS_STORE_KEY is not set here: the imported runs' text is stored in clear" in imported.output
