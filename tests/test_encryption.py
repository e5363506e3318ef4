"""Encryption at rest (EVALS_STORE_KEY): no plaintext in the store, scores served without the key, a wrong
key said plainly, key rotation; and scorecards written without text (`evals report --no-text`)."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from builders import make_run
from click.testing import CliRunner
from cryptography.fernet import Fernet

from evals.cli import main
from evals.config import GateSettings
from evals.errors import ConfigError, StoreError
from evals.fakes import FakeOpenAI, text_reply
from evals.records import Item, Message
from evals.render.purge import purge
from evals.scorecard import build_scorecard
from evals.scorecard.decision import decide
from evals.store.crypto import TextCodec
from evals.store.purge import plan_purge
from evals.store.rekey import rekey
from evals.store.rows import item_values

ROOT = Path(__file__).parent.parent
KEY, OTHER = Fernet.generate_key().decode(), Fernet.generate_key().decode()
SECRET = "jane.doe@example.org, card 4111 1111 1111 1111"
BASE = {f"{area}-{i:02d}": [s] for area, s in (("math", 5), ("geo", 4)) for i in range(12)}


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def raw_text(store):
    """Every stored value of every text column, as the database holds it."""
    q = store._execute
    return (
        [r[0] for r in q("SELECT item_json FROM items").fetchall()]
        + [v for r in q("SELECT text, reasoning FROM answers").fetchall() for v in r if v is not None]
        + [v for r in q("SELECT rationale, raw FROM judgments").fetchall() for v in r if v is not None]
    )  # fmt: skip


def secret_run(store, run_id="r01", scores=BASE, started_at=None):
    return make_run(
        store, run_id, scores, started_at=started_at, questions={k: f"{SECRET} asks {k}" for k in BASE},
        answers={k: f"{SECRET} answers {k}" for k in BASE},
    )  # fmt: skip


def test_round_trip_leaves_no_plaintext_in_the_store(open_store, monkeypatch):
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    conversation = Item(
        id="chat-01", area="chat", reference=f"ref {SECRET}", metadata={"source": SECRET},
        messages=(Message(role="system", content=f"be kind to {SECRET}"), Message(role="user", content="hi?")),
    )  # fmt: skip
    with open_store() as store:
        secret_run(store)
        make_run(store, "r02", {"chat-01": [3]})
        sealed_item = item_values("r02", 0, conversation)[5]
        store._execute("UPDATE items SET item_json = ? WHERE run_id = 'r02'", (sealed_item,))
        stored = raw_text(store)
        assert stored and not any(SECRET in v or "answer math" in v or "because" in v for v in stored)
        assert all(v.startswith("fernet:") for v in stored if not v.startswith("{"))
        rows = list(store.results("r01"))
        assert rows[0].question == f"{SECRET} asks math-00" and rows[0].answer == f"{SECRET} answers math-00"
        assert (rows[0].rationale, rows[0].raw) == ("because 5", "raw")
        assert store.items("r02") == [conversation]
        # The judgment cache is looked up by its key, which stays clear: reuse works on an encrypted store.
        cached = store.cached_judgment("r01-math-00-0")
        assert cached is not None and cached.rationale == "because 5"


def test_without_the_key_scores_reports_and_gates_still_work(open_store, monkeypatch):
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    with open_store() as store:
        secret_run(store)
        secret_run(store, "r02", {k: [2] if k.startswith("geo") else v for k, v in BASE.items()})
        before = (decide(store, "r02", "r01", GateSettings()), [r.score for r in store.results("r02")])
        monkeypatch.delenv("EVALS_STORE_KEY")
        after = (decide(store, "r02", "r01", GateSettings()), [r.score for r in store.results("r02")])
        rows = list(store.results("r02"))
        card = build_scorecard(store, "r02", "r01")
    assert after[1] == before[1]
    assert (
        (after[0].outcome, after[0].overall)
        == (before[0].outcome, before[0].overall)
        == ("fail", after[0].overall)
    )
    assert (
        {r.question for r in rows}
        == {r.answer for r in rows}
        == {r.rationale for r in rows}
        == {"(encrypted)"}
    )
    assert card.regressed() == ["geo", "(overall)"]


def test_a_wrong_key_is_one_clear_error_that_never_shows_a_key(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    from evals.store import Store

    with Store(tmp_path / "reports") as store:
        secret_run(store)
    monkeypatch.setenv("EVALS_STORE_KEY", OTHER)
    with Store(tmp_path / "reports") as store, pytest.raises(StoreError, match="does not match the key"):
        list(store.results("r01"))
    result = invoke("report", "r01")
    assert result.exit_code == 2
    assert "EVALS_STORE_KEY does not match the key this store's text was encrypted with" in result.output
    assert KEY not in result.output and OTHER not in result.output and SECRET not in result.output


def test_a_malformed_key_is_refused_without_echoing_it(monkeypatch):
    with pytest.raises(ConfigError, match="not a Fernet key") as caught:
        TextCodec("hunter2-not-a-key")
    assert "hunter2" not in str(caught.value)


def test_keys_rotate_newest_first(open_store, monkeypatch):
    monkeypatch.setenv("EVALS_STORE_KEY", OTHER)  # the old key
    with open_store() as store:
        secret_run(store)
        monkeypatch.setenv("EVALS_STORE_KEY", f"{KEY},{OTHER}")
        secret_run(store, "r02")  # written with the new key
        assert next(iter(store.results("r01"))).answer == f"{SECRET} answers math-00"
        monkeypatch.setenv("EVALS_STORE_KEY", KEY)  # the old key retired: the new run still reads
        assert next(iter(store.results("r02"))).answer == f"{SECRET} answers math-00"


def test_keygen_prints_a_working_key(monkeypatch):
    result = invoke("store", "keygen")
    assert result.exit_code == 0
    key = result.output.strip()
    codec = TextCodec(key)
    assert codec.open(codec.seal("x")) == "x"
    assert invoke("store", "keygen").output.strip() != key


def test_exports_hold_text_with_the_key_and_none_without(tmp_path, monkeypatch):
    from evals.store import Store

    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    with Store(tmp_path) as store:
        secret_run(store)
        with_key = store.export_jsonl("r01").read_text()
        monkeypatch.delenv("EVALS_STORE_KEY")
        without = store.export_jsonl("r01").read_text()
    assert f"{SECRET} answers" in with_key
    assert SECRET not in without and "fernet:" not in without
    assert json.loads(without.splitlines()[0])["answer"] == "(encrypted)"


def test_an_encrypted_store_is_purged_without_its_key(open_store, monkeypatch):
    monkeypatch.setenv("EVALS_STORE_KEY", KEY)
    with open_store() as store:
        secret_run(store, started_at="2026-09-01T00:00:00+00:00")
        monkeypatch.delenv("EVALS_STORE_KEY")
        done = purge(store, plan_purge(store, None, runs=("r01",)), datetime.now(UTC))
        assert [t.run_id for t in done.targets] == ["r01"]
        assert not any(v.startswith("fernet:") or '"fernet:' in v for v in raw_text(store))
        assert {r.answer for r in store.results("r01")} == {"(purged)"}


def test_resuming_an_encrypted_run_without_its_key_is_refused(tmp_path, monkeypatch):
    suite = [
        {"id": f"q{i}", "area": "a", "question": f"{SECRET} {i}?", "reference": str(i)} for i in range(4)
    ]
    (tmp_path / "suite.jsonl").write_text("".join(json.dumps(s) + "\n" for s in suite))
    with FakeOpenAI(text_reply(lambda q: q.split()[-1].rstrip("?"))) as model:
        config = {
            "models": {"local": {"base_url": model.url, "model": "m"}},
            "judges_dir": str(ROOT / "judges"),
        }
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        monkeypatch.setenv("EVALS_STORE_KEY", KEY)
        assert invoke("run", "--suite", "suite.jsonl", "--run-id", "enc").exit_code == 0
        monkeypatch.delenv("EVALS_STORE_KEY")
        refused = invoke("run", "--resume", "enc")
    assert refused.exit_code == 2
    assert "stored encrypted and EVALS_STORE_KEY is not set" in refused.output
    for db_file in (tmp_path / "reports").glob("evals.db*"):  # the database and its WAL
        assert SECRET.encode() not in db_file.read_bytes(), db_file


def test_report_no_text_writes_scorecards_without_any_text(tmp_path):
    from evals.store import Store

    with Store(tmp_path / "reports") as store:
        secret_run(store)
        secret_run(store, "r02", {k: [2] if k.startswith("geo") else v for k, v in BASE.items()})
    result = invoke("report", "r02", "--baseline", "r01", "--no-text")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "reports" / "runs" / "r02"
    for name in ("scorecard.html", "scorecard.md", "scorecard.json"):
        text = (folder / name).read_text()
        assert SECRET not in text and "because 5" not in text, name
    html = (folder / "scorecard.html").read_text()
    assert "(text omitted)" in html and "geo-00" in html  # ids, areas and scores stay
    assert json.loads((folder / "scorecard.json").read_text())["areas"][0]["mean"] == 2.0


def test_rekey_moves_old_and_clear_text_under_the_newest_key(open_store, monkeypatch):
    with open_store() as store:
        secret_run(store, "r01")  # in clear: written before encryption was turned on
        monkeypatch.setenv("EVALS_STORE_KEY", OTHER)
        secret_run(store, "r02")  # under the old key
        monkeypatch.setenv("EVALS_STORE_KEY", f"{KEY},{OTHER}")
        assert rekey(store) == 2 * (3 * len(BASE) + len(BASE))  # answer, rationale, raw and item of each
        monkeypatch.setenv("EVALS_STORE_KEY", KEY)  # the old key retired
        for run_id in ("r01", "r02"):
            assert next(iter(store.results(run_id))).answer == f"{SECRET} answers math-00"
        assert not any(SECRET in v for v in raw_text(store))


def test_a_run_written_in_clear_into_an_encrypted_store_is_warned_about(tmp_path, monkeypatch):
    suite = [
        {"id": f"q{i}", "area": "a", "question": f"{SECRET} {i}?", "reference": str(i)} for i in range(2)
    ]
    (tmp_path / "suite.jsonl").write_text("".join(json.dumps(s) + "\n" for s in suite))
    with FakeOpenAI(text_reply(lambda q: q.split()[-1].rstrip("?"))) as model:
        config = {
            "models": {"local": {"base_url": model.url, "model": "m"}},
            "judges_dir": str(ROOT / "judges"),
        }
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        monkeypatch.setenv("EVALS_STORE_KEY", KEY)
        sealed = invoke("run", "--suite", "suite.jsonl", "--run-id", "sealed")
        monkeypatch.delenv("EVALS_STORE_KEY")
        clear = invoke("run", "--suite", "suite.jsonl", "--run-id", "clear")
    assert "stored in clear" not in sealed.output
    assert clear.exit_code == 0
    assert "this store encrypts its text but EVALS_STORE_KEY is not set here" in clear.output
