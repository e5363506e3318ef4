"""Store addresses (`store:` in evals.yaml, EVALS_STORE, `evals store copy FROM TO`): a PostgreSQL URL or a libpq
keyword string or a plain SQLite path, nothing else; a password in any form is refused, and never shown: not in
any output, log, file name or file."""

import json
import logging
import sys
import urllib.parse
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from evals.cli import main
from evals.errors import ConfigError
from evals.fakes import FakeOpenAI, text_reply
from evals.secrets import AddressError, parse_address, read_keywords
from evals.store import Store

PW = "hunter2-Sup3r"
"""The password of every variant: none of it may be shown."""
LEAKS = (PW, "hunter2", "Sup3r")

WITH_PASSWORD = [
    f"postgresql://evals:{PW}@db.internal/evals",
    f"postgres://evals:{PW}@db.internal:5432/evals?sslmode=require",
    f"POSTGRESQL://evals:{PW}@db/evals",
    f"postgresql://evals:{urllib.parse.quote(PW + '@/ x', safe='')}@db/evals",
    f"postgresql://evals:{PW}@h1:5432,h2:5433/evals",
    f"postgresql://:{PW}@db/evals",
    f"postgresql://evals@db/evals?password={PW}",
    f"postgresql://evals@db/evals?sslmode=require&sslpassword={PW}",
    f"postgresql://evals@db/evals?PASSWORD={PW}",
    f"host=db dbname=evals user=evals password={PW}",
    f"password={PW} host=db",
    f"host=db password = {PW}",
    f"host=db password= {PW} dbname=evals",
    f"host=db password='{PW} with spaces'",
    f"host=db password='it\\'s {PW}'",
    f"host=db password={PW}\\ x",
    f"  host=db   sslpassword={PW}  ",
    f"host=db PASSWORD={PW}",
    "dbname=evals password=''",
    "postgresql://evals:@db/evals",
    f"postgresql://evals@db/evals?pass%77ord={PW}",
    "postgresql://evals@db/evals?password",
    # A password hidden in another value: libpq takes it for part of a host, database or user name, which
    # the server's errors (database "x password=..." does not exist) and every message naming the store show.
    f"postgresql://evals@db/evals#password={PW}",
    f"postgresql://evals@db/evals?dbname=x%20password%3D{PW}",
    f"postgresql://evals@db/x%20password%3D{PW}",
    f"postgresql://evals%3A{PW}@db/evals",
    f"postgresql://evals@db/evals?application_name=x%20sslpassword%3D{PW}",
    f"host='db password={PW}' dbname=evals",
    f"dbname='host=db password={PW}'",
    f"host=db dbname=postgresql://evals:{PW}@db/evals",
    f"host=db user=evals:{PW}",
    f"host=db\u00a0password={PW} dbname=evals",
]
NOT_ADDRESSES = [
    "sqlite:///reports/evals.db",
    "sqlite:reports/evals.db",
    f"mysql://root:{PW}@db/evals",
    "file:///tmp/evals.db",
    f"https://user:{PW}@example.org/db",
    "host=db bogus=1",
    f"host=db {PW}",
    f"host=db {PW}=x",
    f"host=db dbname='{PW}",
    f"postgresql://evals@db/evals?foo={PW}",
    "postgresql://[::1/evals",
    "my file=1.db",
    "reports/evals.db\x00.txt",
    "reports/evals.db\n",
    f"host=db\tpassword={PW}",
    " reports/evals.db",
    "reports/evals.db ",
    "",
    "   ",
    "postgresql:/db/evals",
    "postgres:evals",
    f"postgresql+psycopg://evals:{PW}@db/evals",
    f"jdbc:postgresql://db/evals?password={PW}",
    "file:evals.db?mode=ro",
    f"redis://:{PW}@cache",
]
POSTGRES = {
    "postgresql://evals@db.internal/evals": "postgresql://db.internal/evals",
    "postgres://db:5432/evals?sslmode=require": "postgres://db:5432/evals?sslmode=require",
    "postgresql://evals@/evals?host=/var/run/postgresql&port=5433": (
        "postgresql:///evals?host=/var/run/postgresql&port=5433"
    ),
    "host=db.internal dbname=evals user=evals": "host=db.internal dbname=evals user=evals",
    "host=db dbname=evals options='-c search_path=evals'": "host=db dbname=evals options='-c search_path=evals'",
    "service=evals": "service=evals",
    "  host=db   port = 5432 ": "host=db port=5432",
    "passfile=/home/u/.pgpass host=db": "passfile=/home/u/.pgpass host=db",
    "host=db dbname=my\\ db": "host=db dbname='my db'",
    "dbname=evals": "dbname=evals",
    "host=/var/run/postgresql dbname=evals": "host=/var/run/postgresql dbname=evals",
    "host=db options='-c password_encryption=scram-sha-256'": "host=db options='-c password_encryption=scram-sha-256'",
    "postgresql://db/evals?passfile=/home/u/.pgpass": "postgresql://db/evals?passfile=/home/u/.pgpass",
}
PATHS = [
    "reports/evals.db",
    "evals.db",
    "./a=b.db",
    "runs/date=2024-11/evals.db",
    "My Files/evals.db",
    "/srv/evals/evals.db",
    "C:\\evals\\evals.db",
    "backup/",
]


def _keys(parsed):
    return {k: str(v) for k, v in parsed.items()}


@pytest.mark.parametrize("value", WITH_PASSWORD)
def test_a_password_in_any_form_is_refused_without_being_shown(value):
    with pytest.raises(AddressError) as caught:
        parse_address(value)
    message = str(caught.value)
    assert "password" in message and "PGPASSWORD" in message
    assert not any(leak in message for leak in LEAKS), message


@pytest.mark.parametrize("value", NOT_ADDRESSES)
def test_what_is_neither_a_postgres_address_nor_a_plain_path_is_refused(value):
    with pytest.raises(AddressError) as caught:
        parse_address(value)
    message = str(caught.value)
    assert not any(leak in message for leak in LEAKS), message
    assert "\n" not in message


@pytest.mark.parametrize(("value", "shown"), POSTGRES.items())
def test_postgres_urls_and_keyword_strings_are_accepted_and_shown_without_user(value, shown):
    address = parse_address(value)
    assert (address.kind, address.target, address.shown) == ("postgresql", value.strip(), shown)


@pytest.mark.parametrize("value", PATHS)
def test_plain_paths_are_sqlite_files(value):
    assert (parse_address(value).kind, parse_address(value).target) == ("sqlite", value)


def test_the_refusals_say_what_to_do():
    assert "./NAME" in str(_refusal("sqlite:reports/evals.db"))
    assert "did you mean 'dbname'" in str(_refusal("host=db dbnme=evals"))
    assert "write it as ./NAME" in str(_refusal("my file=1.db"))
    assert "never closes" in str(_refusal("host='db dbname=evals"))
    assert "control character" in str(_refusal("evals\x00.db"))


def _refusal(value):
    with pytest.raises(AddressError) as caught:
        parse_address(value)
    return caught.value


KEYWORD_STRINGS = [v for v in [*WITH_PASSWORD, *NOT_ADDRESSES, *POSTGRES] if "=" in v and "://" not in v]


@pytest.mark.parametrize("value", KEYWORD_STRINGS)
def test_the_own_reading_of_keyword_strings_agrees_with_libpq(value):
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        expected = _keys(conninfo_to_dict(value))
    except ProgrammingError:
        with pytest.raises(AddressError):
            read_keywords(value)
        return
    assert read_keywords(value) == expected


@pytest.mark.parametrize("value", [*WITH_PASSWORD, *NOT_ADDRESSES, *POSTGRES, *PATHS])
def test_without_psycopg_the_same_addresses_are_refused_and_accepted(value, monkeypatch):
    def decision():
        try:
            address = parse_address(value)
        except AddressError as exc:
            return "refused", "password" in str(exc)
        return address.kind, address.shown

    with_psycopg = decision()
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as when the postgres extra is not installed
    monkeypatch.setitem(sys.modules, "psycopg.conninfo", None)
    assert decision() == with_psycopg


# -- the CLI: config, EVALS_STORE, store copy ------------------------------------------------------------


SUITE = [{"id": f"q{i}", "area": "a", "question": f"What is {i}?", "reference": str(i)} for i in range(3)]


@pytest.fixture
def project(tmp_path):
    with FakeOpenAI(text_reply(lambda q: q.split()[-1].rstrip("?"))) as model:
        (tmp_path / "suite.jsonl").write_text("".join(json.dumps(s) + "\n" for s in SUITE))
        (tmp_path / "evals.yaml").write_text(
            yaml.safe_dump({"models": {"local": {"base_url": model.url, "model": "m", "max_retries": 0}}})
        )
        yield tmp_path


def _with_store(project: Path, store: str) -> None:
    config = yaml.safe_load((project / "evals.yaml").read_text())
    (project / "evals.yaml").write_text(yaml.safe_dump({**config, "store": store}))


def _run(*args, env=None):
    return CliRunner(env=env).invoke(main, [str(a) for a in args])


def _nothing_leaked(folder: Path, *texts: str) -> None:
    """No output, log, file name or file content under ``folder`` holds any part of the password."""
    for text in texts:
        assert not any(leak in text for leak in LEAKS), text
    for path in folder.rglob("*"):
        assert not any(leak in path.name for leak in LEAKS), path
        assert "host=" not in path.name and "=" not in path.name, path  # no store named after an address
        if path.is_file() and path.name != "evals.yaml":
            content = path.read_bytes()
            assert not any(leak.encode() in content for leak in LEAKS), path


CLI_VARIANTS = [
    f"host=db.internal dbname=evals user=evals password={PW}",
    f"host=db password='{PW} x' dbname=evals",
    f"postgresql://evals:{PW}@db.internal/evals",
    f"postgresql://evals@db.internal/evals?password={PW}",
    "sqlite:///reports/evals.db",
    f"mysql://root:{PW}@db/evals",
    f"host=db {PW}",
    f"host='db password={PW}' dbname=evals",
    f"postgresql://evals%3A{PW}@db/evals",
    "postgresql:/db/evals",
]


@pytest.mark.parametrize("value", CLI_VARIANTS)
def test_a_bad_store_in_the_config_is_one_config_line_and_nothing_is_created(project, value, caplog):
    caplog.set_level(logging.DEBUG)
    _with_store(project, value)
    result = _run("run", "--suite", "suite.jsonl", "--judge", "offline", "--run-id", "r1")
    assert result.exit_code == 2, result.output
    assert "evals.yaml:" in result.output and ": store: " in result.output
    assert not (project / "reports").exists()
    _nothing_leaked(project, result.output, caplog.text)


@pytest.mark.parametrize("value", CLI_VARIANTS)
def test_a_bad_evals_store_is_one_line_and_nothing_is_created(project, value, caplog):
    caplog.set_level(logging.DEBUG)
    for args in (("run", "--suite", "suite.jsonl", "--judge", "offline", "--run-id", "r1"), ("runs", "list")):
        result = _run(*args, env={"EVALS_STORE": value})
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: EVALS_STORE: "), result.output
        assert result.output.count("\n") == 1, result.output
        _nothing_leaked(project, result.output, caplog.text)
    assert not (project / "reports").exists()


@pytest.mark.parametrize("value", CLI_VARIANTS)
def test_store_copy_refuses_a_bad_address_on_either_side(project, value, caplog):
    caplog.set_level(logging.DEBUG)
    for args, label in (((value, "backup/"), "FROM"), (("backup/", value), "TO")):
        result = _run("store", "copy", *args)
        assert result.exit_code == 2, result.output
        assert f"error: {label}: " in result.output, result.output
        _nothing_leaked(project, result.output, caplog.text)
    assert not (project / "backup").exists()


def test_store_refuses_a_password_given_directly(tmp_path):
    with pytest.raises(ConfigError) as caught:
        Store(tmp_path, url=f"host=db user=evals password={PW}")
    assert "PGPASSWORD" in str(caught.value) and PW not in str(caught.value)
    assert not any(p.suffix == ".db" for p in tmp_path.rglob("*"))


# -- a keyword string reaches PostgreSQL -----------------------------------------------------------------


def _keyword_string(url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(url)
    return " ".join(f"{k}={parts[k]}" for k in ("host", "port", "dbname", "user"))


def test_a_keyword_string_in_evals_store_sends_runs_to_postgres(project, postgres_url):
    keywords = _keyword_string(postgres_url)
    result = _run(
        "run", "--suite", "suite.jsonl", "--judge", "offline", "--run-id", "k1", env={"EVALS_STORE": keywords}
    )
    assert result.exit_code == 0, result.output
    assert not (project / "reports" / "evals.db").exists()
    assert not any("=" in p.name for p in project.rglob("*"))
    with Store(project, url=postgres_url) as store:
        assert store.run("k1").status == "finished"
    with Store(project, url=keywords) as store:
        assert store.dialect == "postgresql" and str(store.path).startswith("host=")


def test_a_keyword_string_in_the_config_sends_runs_to_postgres(project, postgres_url):
    _with_store(project, _keyword_string(postgres_url))
    result = _run("run", "--suite", "suite.jsonl", "--judge", "offline", "--run-id", "k2")
    assert result.exit_code == 0, result.output
    assert not (project / "reports" / "evals.db").exists()
    with Store(project, url=postgres_url) as store:
        assert [m.run_id for m in store.runs()] == ["k2"]
