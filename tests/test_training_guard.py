"""The training-terms guard: ``open_weights: true`` is refused on a frontier vendor's endpoint, a suite's own
claim of open weights counts only when evals.yaml grants it, a preference pair's ``rejected`` side is held to
the same terms, and ``evals route`` refuses runs of two different suites."""

import json
from pathlib import Path

import pytest
import yaml
from builders import make_run
from click.testing import CliRunner

from evals.cli import main
from evals.config import load_config
from evals.errors import ConfigError
from evals.fakes import FakeAnthropic, FakeOpenAI, grade_by_reference, text_reply
from evals.store import Store

LOCAL_URL = "http://127.0.0.1:8000/v1"


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def config_error(tmp_path: Path, endpoint: dict, section: str = "models") -> str:
    """The one line load_config gives for ``endpoint`` with open_weights: true, at that key's line."""
    config = {
        section: {
            "first": {"base_url": LOCAL_URL, "model": "qwen"},
            "teacher": {**endpoint, "open_weights": True},
        }
    }
    path = tmp_path / "evals.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    lines = str(caught.value).splitlines()
    assert lines[0] == "invalid config:" and len(lines) == 2, str(caught.value)
    at = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "open_weights" in text)
    assert (
        lines[1]
        .strip()
        .startswith(f"{path}:{at}: {section}.teacher.open_weights: refused by the training-terms")
    )
    return lines[1].strip()


# -- 1. open_weights is refused on a frontier vendor's endpoint ------------------------------------------------

VENDOR_ENDPOINTS = [
    ({"provider": "anthropic", "model": "claude-sonnet-4-5"}, "provider 'anthropic'"),
    ({"provider": "anthropic", "base_url": LOCAL_URL, "model": "qwen-72b"}, "provider 'anthropic'"),
    ({"provider": "openai", "model": "Qwen/Qwen2.5-72B-Instruct"}, "without base_url is OpenAI's own API"),
    ({"model": "my-teacher"}, "without base_url is OpenAI's own API"),
    ({"base_url": "https://api.openai.com/v1", "model": "my-teacher"}, "base_url is OpenAI's own API"),
    ({"base_url": "HTTPS://API.OpenAI.com./v1", "model": "x"}, "base_url is OpenAI's own API"),
    ({"base_url": "https://eu.api.openai.com/v1", "model": "x"}, "base_url is OpenAI's own API"),
    ({"base_url": "https://team.openai.azure.com/openai/deployments/prod", "model": "prod"}, "Azure OpenAI"),
    ({"base_url": "https://api.anthropic.com/v1/", "model": "teacher"}, "base_url is Anthropic's own API"),
    ({"base_url": "https://generativelanguage.googleapis.com/v1beta/openai/", "model": "gemma-3-27b-it"},
     "base_url is Google (the Gemini API)'s own API"),
    ({"base_url": "http://api.openai.com", "model": "x"}, "base_url is OpenAI's own API"),
    ({"base_url": "https://api.openai.com:443/", "model": "x"}, "base_url is OpenAI's own API"),
    ({"base_url": "https://user@api.openai.com/v1", "model": "x"}, "base_url is OpenAI's own API"),
    ({"provider": "anthropic", "base_url": "https://api.anthropic.com", "model": "gemma-2"}, "provider 'anthropic'"),
    ({"base_url": "https://\uff41\uff50\uff49.openai.com/v1", "model": "x"}, "base_url is OpenAI's own API"),
    ({"base_url": "https://api.x.ai/v1", "model": "teacher"}, "base_url is xAI's own API"),
]  # fmt: skip


@pytest.mark.parametrize(("endpoint", "rule"), VENDOR_ENDPOINTS)
def test_open_weights_is_refused_at_a_vendors_own_api(tmp_path, endpoint, rule):
    line = config_error(tmp_path, endpoint)
    assert line.startswith(f"{tmp_path / 'evals.yaml'}:") and ": models.teacher.open_weights: " in line
    assert "training-terms guard" in line and rule in line and "remove open_weights: true" in line


CLOSED_NAMES = [
    ("claude-sonnet-4-5", "Anthropic's closed claude*"), ("Claude-3-Opus-20240229", "Anthropic's closed claude*"),
    ("anthropic/claude-3.5-sonnet", "claude*"), ("anthropic.claude-3-haiku-20240307-v1:0", "claude*"),
    ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude*"), ("claude-3-5-sonnet@20240620", "claude*"),
    ("gpt-4", "OpenAI's closed gpt-4*"), ("GPT-4o", "gpt-4*"), ("gpt-4o-mini", "gpt-4*"), ("gpt-4.1", "gpt-4*"),
    ("openai/gpt-4o", "gpt-4*"), ("gpt-3.5-turbo", "gpt-3*"), ("gpt-35-turbo", "gpt-3*"), ("gpt-5", "gpt-5*"),
    ("gpt-5-mini", "gpt-5*"), ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "gpt-4*"), ("gpt-realtime", "gpt-realtime*"),
    ("o1", "OpenAI's closed o1*"), ("o1-preview", "o1*"), ("O3-mini", "o3*"), ("o4-mini", "o4*"), ("openai/o3", "o3*"),
    ("chatgpt-4o-latest", "chatgpt*"), ("text-davinci-003", "text-davinci-0*"), ("davinci-002", "davinci-0*"),
    ("gemini-1.5-pro", "Google's closed gemini*"), ("models/gemini-2.0-flash", "gemini*"),
    ("google/gemini-2.5-pro", "gemini*"), ("Gemini-Exp-1206", "gemini*"), ("\uff47\uff50\uff54-\uff14\uff4f", "gpt-4*"),
    ("  claude-x  ", "claude*"),
    ("claude_3", "claude*"), ("claude3-haiku", "claude*"), ("gpt4o", "gpt4*"), ("GPT4-turbo", "gpt4*"), ("gpt5", "gpt5*"),
    ("gpt35-turbo", "gpt3*"), ("gpt\u20104o", "gpt-4*"), ("gpt-4o/", "gpt-4*"), ("openai/gpt-4o:online", "gpt-4*"),
    ("o3-pro-2025-06-10", "o3*"), ("o4-mini-high", "o4*"), ("o1-open", "o1*"), ("gpt-image-1", "gpt-image*"),
    ("publishers/google/models/gemini-1.5-pro-002", "gemini*"), ("grok-4", "xAI's closed grok-4*"),
    ("x-ai/grok-3-mini", "grok-3*"),
]  # fmt: skip


@pytest.mark.parametrize(("model", "family"), CLOSED_NAMES)
def test_open_weights_is_refused_for_a_closed_model_name_at_any_address(tmp_path, model, family):
    line = config_error(tmp_path, {"base_url": LOCAL_URL, "model": model})
    assert ": models.teacher.open_weights: " in line and family in line and "family" in line


@pytest.mark.parametrize(
    "endpoint",
    [{"model": m} for m in (
        "gpt-oss-20b", "openai/gpt-oss-120b", "gpt-oss:20b", "GPT-OSS-120B", "gemma-2-9b-it", "google/gemma-3-27b-it",
        "gemma3:27b", "codegemma-7b", "gpt2", "openai-community/gpt2", "gpt-2", "EleutherAI/gpt-j-6b",
        "EleutherAI/gpt-neox-20b", "nomic-ai/gpt4all-j", "Qwen/Qwen2.5-72B-Instruct", "deepseek-ai/DeepSeek-R1",
        "meta-llama/Llama-3.1-8B-Instruct", "AIDC-AI/Marco-o1", "allenai/OLMo-2-1124-7B", "local",
        "someone/Qwen2.5-7B-Instruct-Claude-Distill", "gpt4all-13b-snoozy", "gpt-sw3-6.7b", "xai-org/grok-1",
        "O1-OPEN/OpenO1-LLaMA-8B-v0.1", "claude-distill/qwen-7b", "llama3.1:8b", "phi-3.5-mini",
    )] + [
        {"base_url": "https://openrouter.ai/api/v1", "model": "openai/gpt-oss-120b"},
        {"base_url": "https://notopenai.com/v1", "model": "qwen"},
        {"base_url": "https://vllm.internal:8000/v1", "model": "Qwen/Qwen3-235B-A22B"},
    ],
)  # fmt: skip
def test_open_releases_that_share_a_vendors_prefix_may_be_marked_open(tmp_path, endpoint):
    path = tmp_path / "evals.yaml"
    path.write_text(
        yaml.safe_dump({"models": {"teacher": {"base_url": LOCAL_URL, **endpoint, "open_weights": True}}})
    )
    assert load_config(path).models["teacher"].open_weights is True


def test_the_guard_covers_judges_and_only_the_claim_of_open_weights(tmp_path):
    line = config_error(tmp_path, {"provider": "anthropic", "model": "claude-x"}, section="judges")
    assert ": judges.teacher.open_weights: " in line and "provider 'anthropic'" in line
    path = tmp_path / "closed.yaml"  # a frontier endpoint without the claim is as usual
    path.write_text(yaml.safe_dump({"models": {"claude": {"provider": "anthropic", "model": "claude-x"},
                                               "gpt": {"model": "gpt-4o", "open_weights": False}}}))  # fmt: skip
    assert not any(e.open_weights for e in load_config(path).models.values())


def test_a_refused_config_stops_a_command_with_exit_2_before_anything_is_written(tmp_path):
    (tmp_path / "evals.yaml").write_text(
        "models:\n  local:\n    base_url: http://127.0.0.1:9/v1\n    model: qwen\n"
        "  gpt:\n    model: openai/gpt-4o\n    base_url: http://127.0.0.1:9/v1\n    open_weights: true\n"
    )
    (tmp_path / "s.jsonl").write_text(json.dumps({"id": "a", "area": "x", "question": "q?"}) + "\n")
    result = CliRunner().invoke(main, ["run", "--suite", "s.jsonl", "--model", "local"])
    assert result.exit_code == 2
    assert (
        "evals.yaml:8: models.gpt.open_weights: refused by the training-terms guard: model 'openai/gpt-4o'"
        in result.output
    )
    assert "Traceback" not in result.output and not (tmp_path / "reports").exists()


# -- 2 and 3. evals export weak: the suite's claim, and the rejected side -------------------------------------


def wrong(question: str) -> str:
    return "No idea."


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A local model that answers every question wrong, a judge, an open-weights teacher, a closed model, and
    a proxy named like a teacher whose server reports a closed model's id."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    with (
        FakeOpenAI(text_reply(wrong), model_id="qwen-1") as local,
        FakeAnthropic(text_reply(wrong), model_id="claude-x-1") as claude,
        FakeOpenAI(text_reply(lambda q: "R"), model_id="gpt-4o-2024-08-06") as proxy,
        FakeOpenAI(text_reply(wrong), model_id="gpt-oss-20b") as oss,
        FakeAnthropic(grade_by_reference, model_id="judge-1") as judge,
    ):
        config = {
            "models": {
                "local": {"base_url": local.url, "model": "qwen"},
                "claude": {"provider": "anthropic", "base_url": claude.url, "model": "claude-x"},
                "teacher": {"base_url": "http://127.0.0.1:9/v1", "model": "qwen-72b", "open_weights": True},
                "proxy": {"base_url": proxy.url, "model": "house-teacher", "open_weights": True},
                "oss": {"base_url": oss.url, "model": "gpt-oss-20b"},
                "mislabelled": {"base_url": local.url, "model": "openai/gpt-4.1"},
            },
            "judges": {"judge": {"provider": "anthropic", "base_url": judge.url, "model": "judge"}},
        }  # fmt: skip
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        monkeypatch.chdir(tmp_path)
        yield tmp_path


def by(model_name: str, model: str | None, open_weights=True, model_id: str | None = None) -> dict:
    return {"reference_source": {"model_name": model_name, "model": model, "model_id": model_id,
                                 "open_weights": open_weights, "written_at": "2026-01-01T00:00:00+00:00"}}  # fmt: skip


def write_suite(folder: Path, metadata: dict[str, dict]) -> None:
    items = [
        {"id": item_id, "area": "geo", "question": f"Question {item_id}?", "reference": f"Ref{item_id}",
         **({"metadata": meta} if meta else {})}
        for item_id, meta in metadata.items()
    ]  # fmt: skip
    (folder / "s.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))


def export(*args: str, model: str = "local", run_id: str = "r1"):
    result = invoke("run", "--suite", "s.jsonl", "--model", model, "--judge", "judge", "--run-id", run_id)
    assert result.exit_code == 0, result.output
    return CliRunner().invoke(main, ["export", "weak", run_id, "--out", "weak.jsonl", *args])


CLAIMS = {
    "claude's reference hand-marked open": (by("claude", "claude-x"), "does not mark 'claude' open_weights: true"),
    "a model evals.yaml does not have": (by("ghost", "qwen-72b"), "evals.yaml has no model 'ghost'"),
    "the teacher's name on claude's text": (by("teacher", "claude-x"), "asks for 'qwen-72b', not 'claude-x'"),
    "the teacher's name and model, claude's id": (by("teacher", "qwen-72b", model_id="claude-x-1"), "claude*"),
    "the claim as a string": (by("teacher", "qwen-72b", open_weights="true"), "not marked open_weights"),
    "no model name": ({"reference_source": {"open_weights": True}}, "evals.yaml has no model '?'"),
    "reference_source not a mapping": ({"reference_source": "teacher"}, "not marked open_weights"),
    "only the generator's record": ({"generator": {"model_name": "teacher", "model": "qwen-72b"}}, "not marked"),
    "the claim as 1": (by("teacher", "qwen-72b", open_weights=1), "not marked open_weights"),
    "reference_source empty": ({"reference_source": {}}, "not marked open_weights"),
    "the proxy's text, marked open": (by("proxy", "house-teacher", model_id="gpt-4o-2024-08-06"), "gpt-4*"),
    "a closed model name in the metadata": (by("teacher", "qwen-72b", model_id="o3-mini"), "o3*"),
}  # fmt: skip


@pytest.mark.parametrize("fmt", ["sft", "preference"])
@pytest.mark.parametrize("case", list(CLAIMS))
def test_a_claim_of_open_weights_that_evals_yaml_does_not_grant_is_refused(project, case, fmt):
    metadata, reason = CLAIMS[case]
    write_suite(project, {"q1": metadata, "q2": {}})
    result = export("--format", fmt)
    assert result.exit_code == 2, result.output
    assert "frontier model terms" in result.output and "q1" in result.output and reason in result.output
    assert not (project / "weak.jsonl").exists()
    skipped = CliRunner().invoke(
        main, ["export", "weak", "r1", "--out", "weak.jsonl", "--format", fmt, "--skip-model-references"]
    )
    assert skipped.exit_code == 0 and "1 left out" in skipped.output
    rows = [json.loads(line) for line in (project / "weak.jsonl").read_text().splitlines()]
    assert [r["metadata"]["item_id"] for r in rows] == ["q2"]  # people wrote q2's reference


def test_a_claim_evals_yaml_grants_is_a_target_until_the_config_withdraws_it(project):
    write_suite(project, {"q1": by("teacher", "qwen-72b", model_id="Qwen2.5-72B-Instruct"), "q2": {}})
    assert export("--format", "preference").exit_code == 0
    rows = [json.loads(line) for line in (project / "weak.jsonl").read_text().splitlines()]
    assert [(r["chosen"], r["rejected"]) for r in rows] == [("Refq1", "No idea."), ("Refq2", "No idea.")]
    config = yaml.safe_load((project / "evals.yaml").read_text())
    del config["models"]["teacher"]["open_weights"]
    (project / "evals.yaml").write_text(yaml.safe_dump(config))
    again = CliRunner().invoke(main, ["export", "weak", "r1", "--out", "weak2.jsonl"])
    assert again.exit_code == 2 and "does not mark 'teacher' open_weights: true" in again.output


def test_references_from_a_proxy_whose_server_reports_a_closed_model_are_refused(project):
    (project / "q.jsonl").write_text(
        "".join(
            json.dumps({"id": i, "area": "geo", "question": f"Question {i}?"}) + "\n" for i in ("q1", "q2")
        )
    )
    filled = invoke("suite", "references", "q.jsonl", "--model", "proxy", "--out", "s.jsonl")
    assert filled.exit_code == 0, filled.output
    result = export()
    assert result.exit_code == 2
    assert "model 'gpt-4o-2024-08-06' is of OpenAI's closed gpt-4* family" in result.output


@pytest.mark.parametrize(
    ("model", "rule"),
    [
        ("claude", "provider 'anthropic' is Anthropic's API"),
        ("mislabelled", "model 'openai/gpt-4.1' is of OpenAI's closed gpt-4* family"),
        (
            "proxy",
            "model 'gpt-4o-2024-08-06' is of OpenAI's closed gpt-4* family",
        ),  # the id its server reported
    ],
)
def test_a_closed_models_answers_are_refused_as_the_rejected_side(project, model, rule):
    write_suite(project, {"q1": {}, "q2": {}})  # references people wrote: only the rejected side is at stake
    result = export("--format", "preference", model=model)
    assert result.exit_code == 2, result.output
    assert (
        "rejected side" in result.output and rule in result.output and "frontier model terms" in result.output
    )
    assert not (project / "weak.jsonl").exists()
    sft = CliRunner().invoke(
        main, ["export", "weak", "r1", "--out", "weak.jsonl"]
    )  # the answers are not in sft
    assert sft.exit_code == 0 and len((project / "weak.jsonl").read_text().splitlines()) == 2


def test_an_open_release_named_like_a_vendors_model_gives_the_rejected_side(project):
    write_suite(project, {"q1": {}})
    assert export("--format", "preference", model="oss").exit_code == 0
    assert json.loads((project / "weak.jsonl").read_text())["rejected"] == "No idea."


# -- 4. evals route refuses runs of two suites ------------------------------------------------------------------


SCORES = {f"geo-{i}": [4] for i in range(6)}


@pytest.mark.parametrize(("local", "frontier"), [("billing", "support"), ("billing", "Billing"), ("a", "a ")])
def test_route_refuses_runs_of_different_suites_in_one_line(tmp_path, local, frontier):
    with Store(tmp_path / "reports") as store:
        make_run(store, "loc01", SCORES, suite=local)
        make_run(store, "fro02", SCORES, suite=frontier, model_name="claude")
    result = CliRunner().invoke(main, ["route", "--local", "loc01", "--frontier", "fro02", "--no-record"])
    assert result.exit_code == 2
    message = result.output.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in result.output
    assert "different suites" in message and repr(local) in message and repr(frontier) in message


def test_route_refuses_two_suite_files_that_share_items(project):
    questions = [
        {"id": f"geo-{i}", "area": "geo", "question": f"Question {i}?", "reference": "R"} for i in range(4)
    ]
    for name in ("billing", "support"):  # the same items under two suites' names
        (project / f"{name}.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    for suite, model, run_id in (("billing", "local", "loc"), ("support", "claude", "fro")):
        result = invoke(
            "run", "--suite", f"{suite}.jsonl", "--model", model, "--judge", "judge", "--run-id", run_id
        )
        assert result.exit_code == 0, result.output
    refused = CliRunner().invoke(main, ["route", "--local", "loc", "--frontier", "fro"])
    assert refused.exit_code == 2
    assert "runs loc and fro are of different suites ('billing' and 'support')" in refused.output
    again = invoke(
        "run", "--suite", "billing.jsonl", "--model", "claude", "--judge", "judge", "--run-id", "fro2"
    )
    assert again.exit_code == 0, again.output
    routed = CliRunner().invoke(main, ["route", "--local", "loc", "--frontier", "fro2", "--no-record"])
    assert routed.exit_code == 0, routed.output  # the same suite routes as before


@pytest.mark.parametrize("changed", [4, 2])
def test_route_pairs_only_unchanged_items_of_one_suite_and_says_so(project, changed):
    """Two files under one suite name whose items differ in content: only the unchanged ones are paired, and
    the route says how many were left out; none in common is refused in one line that says what to do."""
    for folder, prefix in (("a", "Question"), ("b", "Asked")):
        (project / folder).mkdir()
        items = [
            {"id": f"geo-{i}", "area": "geo", "reference": "R",
             "question": f"{prefix if i < changed else 'Question'} {i}?"}
            for i in range(4)
        ]  # fmt: skip
        (project / folder / "billing.jsonl").write_text("".join(json.dumps(q) + "\n" for q in items))
    for folder, model, run_id in (("a", "local", "loc"), ("b", "claude", "fro")):
        result = invoke(
            "run",
            "--suite",
            f"{folder}/billing.jsonl",
            "--model",
            model,
            "--judge",
            "judge",
            "--run-id",
            run_id,
        )
        assert result.exit_code == 0, result.output
    routed = CliRunner().invoke(main, ["route", "--local", "loc", "--frontier", "fro", "--no-record"])
    if changed == 4:
        assert routed.exit_code == 2 and len(routed.output.strip().splitlines()) == 1
        assert (
            "no item in common (same id and content): 4 item(s) share an id but not their content"
            in routed.output
        )
        assert "one version of suite 'billing'" in routed.output
    else:
        assert routed.exit_code == 0, routed.output
        assert (
            "2 item(s) changed between the runs (same id, other content) and are not paired: geo-0, geo-1"
            in (" ".join(routed.output.split()))
        )
