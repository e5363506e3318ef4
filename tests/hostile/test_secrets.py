"""Secrets wherever they hide: echoed keys in any form, credentials in base_url, key-like api_key_env, rollback."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import urllib.parse
from pathlib import Path

import pytest
import yaml
from builders import make_run
from click.testing import CliRunner

from evals.cli import main
from evals.config import Endpoint, JudgeEndpoint, load_config
from evals.errors import ConfigError, ProviderError
from evals.fakes import FakeAnthropic, FakeOpenAI, Reply, text_reply
from evals.outbound.providers import build_provider
from evals.records import CompletionRequest
from evals.scorecard.rollback import restore_model
from evals.secrets import REDACTED, safe_url, scrub
from evals.store import Store

KEY = "sk-proj-Zq8vR2mK4tY7wX1nB5cD9fG3hJ6"
PASSWORD = "hunter2-is-not-a-good-password"


def echoes(secret: str) -> dict[str, str]:
    """Forms in which a server might hand a secret back."""
    tail = secret.removeprefix("sk-proj-")
    return {
        "as is": secret,
        "prefix-less": tail,
        "url-encoded": urllib.parse.quote(f"{secret}/+=", safe=""),
        "base64": base64.b64encode(secret.encode()).decode(),
        "base64 in a Basic header": base64.b64encode(f"user:{secret}".encode()).decode(),
        "base64 at offset 2": base64.b64encode(f"ab{secret}".encode()).decode(),
        "url-safe base64": base64.urlsafe_b64encode(f"x{secret}".encode()).decode(),
        "hex": secret.encode().hex(),
    }


def leaked(text: str, secret: str) -> list[str]:
    """Which echoes of ``secret`` (beyond any trivially short fragment) appear in ``text``."""
    found = [name for name, form in echoes(secret).items() if form in text]
    core = secret.removeprefix("sk-proj-")[4:-4]  # any long middle part of the key
    return found + (["middle"] if core in text else [])


@pytest.mark.parametrize("form", list(echoes(KEY)))
def test_scrub_removes_every_form_of_a_key(form):
    text = f"error: invalid key {echoes(KEY)[form]} given"
    cleaned = scrub(text, [KEY])
    assert REDACTED in cleaned and leaked(cleaned, KEY) == [], cleaned


def test_scrub_leaves_ordinary_text_alone():
    assert scrub("Paris is the capital of France.", [KEY, None, "abc"]) == "Paris is the capital of France."


def _provider(kind: str, server_url: str, monkeypatch: pytest.MonkeyPatch, base_url: str | None = None):
    monkeypatch.setenv("TEST_KEY", KEY)
    endpoint = JudgeEndpoint(
        provider=kind, base_url=base_url or server_url, model="m", api_key_env="TEST_KEY", max_retries=0
    )
    return build_provider("judge", endpoint)


async def _complete(provider):
    try:
        return await provider.complete(CompletionRequest(messages=({"role": "user", "content": "hi"},)))
    finally:
        await provider.aclose()


@pytest.mark.parametrize("server_class", [FakeOpenAI, FakeAnthropic])
def test_a_key_echoed_in_the_model_field_and_the_text_is_scrubbed(server_class, monkeypatch):
    forms = echoes(KEY)
    reply = " ".join(forms.values())
    with server_class(text_reply(lambda _: reply), model_id=forms["prefix-less"]) as server:
        kind = "openai" if server_class is FakeOpenAI else "anthropic"
        completion = asyncio.run(_complete(_provider(kind, server.url, monkeypatch)))
    assert leaked(completion.model_id or "", KEY) == [] and REDACTED in (completion.model_id or "")
    assert leaked(completion.text, KEY) == []


@pytest.mark.parametrize("server_class", [FakeOpenAI, FakeAnthropic])
def test_a_key_echoed_in_the_finish_reason_and_the_reasoning_is_scrubbed(server_class, monkeypatch):
    forms = " ".join(echoes(KEY).values())
    with server_class(
        lambda _: Reply("Paris", finish_reason="stop " + forms, reasoning="think " + forms)
    ) as server:
        kind = "openai" if server_class is FakeOpenAI else "anthropic"
        completion = asyncio.run(_complete(_provider(kind, server.url, monkeypatch)))
    assert leaked(completion.finish_reason or "", KEY) == [] and REDACTED in (completion.finish_reason or "")
    assert leaked(completion.reasoning or "", KEY) == [] and REDACTED in (completion.reasoning or "")


def test_a_key_echoed_encoded_in_an_error_body_is_scrubbed(monkeypatch):
    def fail(_body):
        raise ValueError("bad credentials " + echoes(KEY)["base64 in a Basic header"])

    with FakeOpenAI(fail) as server:
        provider = _provider("openai", server.url, monkeypatch)
        with pytest.raises(ProviderError) as caught:
            asyncio.run(_complete(provider))
    assert "500" in str(caught.value) and leaked(str(caught.value), KEY) == []


def test_credentials_in_base_url_stay_out_of_snapshots_and_replies(monkeypatch):
    with FakeOpenAI(text_reply(lambda _: f"you sent {PASSWORD}")) as server:
        url = server.url.replace("http://", f"http://alice:{PASSWORD}@")
        endpoint = Endpoint(base_url=url, model="m")
        assert endpoint.snapshot()["base_url"] == server.url
        completion = asyncio.run(_complete(_provider("openai", server.url, monkeypatch, base_url=url)))
    assert PASSWORD not in completion.text


def test_a_url_password_echoed_in_an_error_body_is_scrubbed(monkeypatch):
    def fail(_body):
        raise ValueError(f"proxy refused alice with password {PASSWORD}")

    with FakeOpenAI(fail) as server:
        url = server.url.replace("http://", f"http://alice:{PASSWORD}@")
        provider = _provider("openai", server.url, monkeypatch, base_url=url)
        with pytest.raises(ProviderError) as caught:
            asyncio.run(_complete(provider))
    assert "proxy refused" in str(caught.value) and PASSWORD not in str(caught.value)


def test_safe_url_drops_user_and_password():
    assert safe_url("https://u:p%40ss@api.example.com:8443/v1?x=1") == "https://api.example.com:8443/v1?x=1"
    assert safe_url("http://localhost:8000/v1") == "http://localhost:8000/v1"


def test_a_run_against_a_url_with_credentials_stores_and_prints_none(tmp_path, monkeypatch):
    with FakeOpenAI(text_reply(lambda _: "4")) as server:
        url = server.url.replace("http://", f"http://alice:{PASSWORD}@")
        config = {
            "models": {"local": {"base_url": url, "model": "qwen", "max_retries": 0}},
            "judges_dir": str(Path(__file__).parents[2] / "judges"),
        }
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        (tmp_path / "s.jsonl").write_text(
            json.dumps({"id": "q1", "area": "a", "question": "2+2?", "reference": "4"}) + "\n"
        )
        result = CliRunner().invoke(main, ["run", "--suite", "s.jsonl", "--judge", "offline"])
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    written = b"".join(p.read_bytes() for p in (tmp_path / "reports").rglob("*") if p.is_file())
    assert written and PASSWORD.encode() not in written


def test_rollback_shows_and_writes_no_credentials_and_keeps_permissions(tmp_path):
    with Store(tmp_path / "reports") as store:
        run = make_run(store, "r01", {"a-1": [5]}, model_config={"base_url": f"http://bob:{PASSWORD}@h:1/v1"})
    config = tmp_path / "evals.yaml"
    config.write_text("models:\n  local: {model: new}\njudges: {}\n")
    config.chmod(0o600)
    text, written = restore_model(run, config, write=True)
    assert written == config and PASSWORD not in text and PASSWORD not in config.read_text()
    assert yaml.safe_load(config.read_text())["models"]["local"]["base_url"] == "http://h:1/v1"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    backup = tmp_path / "evals.yaml.bak"
    assert "model: new" in backup.read_text() and stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if "tmp" in p.name) == []  # no temporary left behind


@pytest.mark.parametrize("value", [KEY, "sk-ant-api03-abcdef", "my key", "openai_api_key", "1PASSWORD"])
def test_api_key_env_that_is_not_a_variable_name_is_refused_without_echo(tmp_path, value):
    path = tmp_path / "evals.yaml"
    path.write_text(f"models:\n  local:\n    model: m\n    api_key_env: {json.dumps(value)}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert (
        f"{path}:4: models.local.api_key_env:" in message
        and "name of an environment variable" in message.lower()
    )
    assert value not in message


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("base_url", "localhost:8000/v1", "http"),
        ("base_url", "ftp://host/v1", "scheme"),
        ("base_url", "http:///v1", "no host"),
        ("base_url", f"http://u:{PASSWORD}@host:99999/v1", "not a valid URL"),
        ("base_url", f"http://host/v1?api-key={PASSWORD}", "query"),  # kept in snapshots, shown in advice
        ("base_url", f"http://host/v1#{PASSWORD}", "query"),
        ("temperature", ".nan", "finite"),
        ("temperature", "-1", "greater than or equal to 0"),
        ("timeout_s", ".inf", "finite"),
        ("timeout_s", "0", "greater than 0"),
        ("top_p", "1.5", "less than or equal to 1"),
        ("price_per_hour", "-.inf", "finite"),
        ("price_in_per_mtok", "-2", "greater than or equal to 0"),
        ("provider", "gemini", "openai"),
        ("extra_body", f"{{api_key: {PASSWORD}}}", "api_key_env"),  # kept in every snapshot and scorecard
        ("extra_body", f"{{auth: {{Access-Token: {PASSWORD}}}}}", "api_key_env"),
        ("extra_body", "{top_k: .nan}", "finite"),  # else a run is made, then json.dumps fails in it
        ("extra_body", "{top_k: [1, -.inf]}", "finite"),
        ("extra_body", "{since: 2026-01-01}", "JSON"),  # YAML dates are no JSON
        ("max_retries", "100000000000000000000", "less than or equal to 100"),  # a dead server, forever
    ],
)
@pytest.mark.parametrize("section", ["models", "judges"])
def test_config_fields_are_checked_with_file_line_and_field(tmp_path, section, field, value, words):
    path = tmp_path / "evals.yaml"
    path.write_text(f"{section}:\n  local:\n    model: m\n    {field}: {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert f"{path}:4: {section}.local.{field}: " in message and words in message, message
    assert PASSWORD not in message


def test_scorecard_and_gate_settings_are_finite(tmp_path):
    path = tmp_path / "evals.yaml"
    path.write_text("gate:\n  alpha: .nan\n  margin: .inf\nscorecard:\n  weak_mean: 9\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert f"{path}:2: gate.alpha:" in text and f"{path}:3: gate.margin:" in text
    assert f"{path}:5: scorecard.weak_mean:" in text


def test_a_decision_setting_left_under_scorecard_says_where_it_lives_now(tmp_path):
    path = tmp_path / "evals.yaml"
    path.write_text("scorecard:\n  weak_mean: 3\n  min_effect: 0.4\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    expected = f"{path}:3: scorecard.min_effect: has moved to the gate: section (gate: {{min_effect: ...}})"
    assert expected in str(caught.value)


def test_config_file_permissions_are_not_widened_by_a_new_rollback_file(tmp_path):
    with Store(tmp_path / "reports") as store:
        run = make_run(store, "r01", {"a-1": [5]})
    os.umask(0o022)
    restore_model(run, tmp_path / "new.yaml", write=True)
    assert stat.S_IMODE((tmp_path / "new.yaml").stat().st_mode) == 0o600
    assert Path(tmp_path / "new.yaml").read_text().startswith("models:")


def test_scrub_removes_url_passwords_but_not_addresses():
    text = "clone ssh://git@github.com/x and fetch https://bob:hunter22@example.com/data"
    assert scrub(text, [KEY]) == "clone ssh://git@github.com/x and fetch https://[redacted]@example.com/data"
