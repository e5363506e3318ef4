"""`evals suite generate` and `evals suite review` end to end on the fake servers: chunking, the quote
check, near-duplicates, resume, difficulty, and people's decisions."""

import json
import re

import pytest
import yaml
from click.testing import CliRunner

from evals.authoring.documents import chunks
from evals.authoring.generate import duplicates, supported
from evals.cli import main
from evals.fakes import FakeAnthropic, FakeOpenAI, last_user_text, text_reply
from evals.suites import load_suite

FACTS = {
    "Refunds": ("Refunds are issued within 14 days of the return.", "How fast are refunds issued?", "Within 14 days of the return."),
    "Warranty": ("The warranty covers parts for two years.", "How long does the warranty cover parts?", "Two years."),
    "Shipping": ("Orders above 50 euros ship free.", "Which orders ship free?", "Orders above 50 euros."),
}  # fmt: skip


def write_items(body):
    passage = re.search(r"<passage>\n(.*)\n</passage>", last_user_text(body), re.S).group(1)
    items = []
    for sentence, question, reference in FACTS.values():
        if sentence in passage:
            items.append({"question": question, "reference": reference, "quote": sentence})
            # the same question reworded only in case and spacing: a near-duplicate
            items.append({"question": question.upper() + "  ", "reference": reference, "quote": sentence})
    items.append({"question": "What colour is the logo?", "reference": "Blue.", "quote": "The logo is blue."})
    items.append(
        {"question": "Who founded it?", "reference": "Ada Lovelace in 1843.", "quote": items[0]["quote"]}
    )
    return {"items": items}


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    with (
        FakeAnthropic(write_items, model_id="claude-writer") as writer,
        FakeOpenAI(
            text_reply(lambda q: "Two years." if "warranty" in q else "No idea."), model_id="qwen"
        ) as local,
    ):
        config = {
            "models": {
                "writer": {"provider": "anthropic", "base_url": writer.url, "model": "claude-w",
                           "price_in_per_mtok": 3, "price_out_per_mtok": 15},
                "local": {"base_url": local.url, "model": "qwen"},
            },
        }  # fmt: skip
        (tmp_path / "evals.yaml").write_text(yaml.safe_dump(config))
        docs = tmp_path / "docs"
        docs.mkdir()
        (docs / "policy.md").write_text(f"# Policy\n\n{FACTS['Refunds'][0]}\n\nSome filler text here.\n")
        (docs / "help.html").write_text(f"<html><script>evil()</script><p>{FACTS['Warranty'][0]}</p></html>")
        from fpdf import FPDF

        pdf = FPDF()
        pdf.add_page()
        pdf.set_font("helvetica", size=12)
        pdf.cell(text=FACTS["Shipping"][0])
        pdf.output(str(docs / "terms.pdf"))
        monkeypatch.chdir(tmp_path)
        yield tmp_path, writer


def generate(*extra):
    args = ["suite", "generate", "--from", "docs/policy.md", "--from", "docs/help.html", "--from", "docs/terms.pdf",
            "--generator", "writer", "--area", "support", "--out", "draft.jsonl", *extra]  # fmt: skip
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_generation_checks_quotes_drops_duplicates_and_records_provenance(project):
    folder, writer = project
    result = generate()
    assert result.exit_code == 0, result.output
    assert writer.count() == 3  # one chunk per (short) document: Markdown, HTML and PDF all read
    suite = load_suite(folder / "draft.jsonl")  # a suite `evals suite validate` accepts
    assert sorted(i.question for i in suite.items) == sorted(f[1] for f in FACTS.values())
    assert "dropped 6 unsupported by their quote and 3 near-duplicate(s)" in result.output
    item = next(i for i in suite.items if i.question == FACTS["Warranty"][1])
    assert item.metadata["review"] == "pending"
    assert item.metadata["source"]["document"].endswith("help.html")
    assert item.metadata["source"]["quote"] == FACTS["Warranty"][0]
    assert (
        item.metadata["generator"]["model_id"] == "claude-writer"
        and item.metadata["generator"]["prompt_hash"]
    )
    assert item.metadata["reference_source"]["open_weights"] is False  # a closed model wrote it
    assert "cost: $" in result.output
    assert not any("evil()" in json.dumps(body) for body in writer.requests)  # scripts are not text


def test_an_interrupted_generation_resumes_without_asking_again(project):
    folder, writer = project
    assert generate().exit_code == 0
    [path] = (folder / "reports" / "generate").glob("*.progress.jsonl")  # not beside the suite
    progress = path.read_text().splitlines()
    path.write_text("\n".join(progress[:2]) + "\n" + progress[2][:20])  # cut short
    again = generate()
    assert again.exit_code == 0
    assert writer.count() == 4  # only the chunk whose line was cut was asked again
    assert "2 done before" in again.output
    assert len(load_suite(folder / "draft.jsonl").items) == 3


def test_difficulty_comes_from_a_trial_answer_of_the_local_model(project):
    folder, _ = project
    result = generate("--local", "local", "--judge", "offline")
    assert result.exit_code == 0, result.output
    levels = {i.question: i.metadata["difficulty"] for i in load_suite(folder / "draft.jsonl").items}
    assert levels[FACTS["Warranty"][1]] == "easy" and levels[FACTS["Refunds"][1]] == "hard"


def test_dry_run_prices_the_generation_and_calls_nothing(project):
    _, writer = project
    result = generate("--dry-run")
    assert result.exit_code == 0 and "3 chunk(s)" in result.output and "estimated cost: ≈ $" in result.output
    assert writer.count() == 0


def test_review_records_accept_edit_and_reject(project):
    folder, _ = project
    generate()
    ids = {i.question: i.id for i in load_suite(folder / "draft.jsonl").items}
    refunds, warranty, shipping = (ids[f[1]] for f in FACTS.values())
    result = CliRunner().invoke(
        main,
        ["suite", "review", "draft.jsonl", "--accept", refunds, "--reject", shipping, "--reviewer", "ana"],
    )
    assert result.exit_code == 0, result.output
    # interactive: edit the last pending one
    edited = CliRunner().invoke(
        main, ["suite", "review", "draft.jsonl"], input="e\n\nTwo years, parts only.\n"
    )
    assert edited.exit_code == 0, edited.output
    items = {i.id: i for i in load_suite(folder / "draft.jsonl").items}
    assert items[refunds].metadata["review"] == "accepted" and items[refunds].metadata["reviewer"] == "ana"
    assert (
        items[warranty].metadata["review"] == "edited"
        and items[warranty].reference == "Two years, parts only."
    )
    assert shipping not in items
    assert shipping in (folder / "draft.jsonl.rejected.jsonl").read_text()
    assert "0 pending" in CliRunner().invoke(main, ["suite", "review", "draft.jsonl", "--list"]).output
    # In a suite folder, what people rejected is kept beside the suite but never read as part of it.
    (folder / "suite").mkdir()
    for name in ("draft.jsonl", "draft.jsonl.rejected.jsonl"):
        (folder / "suite" / name).write_text((folder / name).read_text())
    assert shipping not in {i.id for i in load_suite(folder / "suite").items}


def test_chunks_cut_between_paragraphs():
    text = "\n\n".join(["a" * 60, "b" * 60, "c" * 60])
    assert chunks(text, 130) == ["a" * 60 + "\n\n" + "b" * 60, "c" * 60]
    assert chunks("x" * 500, 100) == ["x" * 500]  # a long paragraph stays whole


def test_quote_and_support_checks():
    chunk = "Refunds are issued within 14 days.\nThe office closes at 6."
    assert supported("Within 14 days.", "refunds are  issued within 14 days.", chunk) is None
    assert supported("Within 14 days.", "Refunds take a month.", chunk) == "its quote is not in the document"
    assert (
        supported("Ada Lovelace founded it.", "The office closes at 6.", chunk)
        == "its reference is not supported by its quote"
    )
    assert duplicates(["How fast are refunds?", "HOW  fast are refunds?", "When does the office close?"]) == {
        1
    }


def test_an_external_generator_reads_redacted_documents_and_items_come_back_restored(project):
    folder, writer = project
    contact = "Write to refunds@example.com for a refund."
    (folder / "docs" / "policy.md").write_text(f"# Policy\n\n{contact}\n")

    def quotes_contact(body):
        passage = re.search(r"<passage>\n(.*)\n</passage>", last_user_text(body), re.S).group(1)  # type: ignore[union-attr]
        line = next(s for s in passage.splitlines() if s.startswith("Write to"))
        address = line.split()[2]
        return {"items": [{"question": "Where do refunds go?", "reference": address, "quote": line}]}

    writer.responder = quotes_contact
    config = yaml.safe_load((folder / "evals.yaml").read_text())
    config["models"]["writer"]["external"] = True
    (folder / "evals.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(main, ["suite", "generate", "--from", "docs/policy.md", "--generator", "writer",
                                       "--area", "support", "--out", "draft.jsonl"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "refunds@example.com" not in json.dumps(writer.requests)  # the generator read a placeholder
    [item] = load_suite(folder / "draft.jsonl").items
    assert (
        item.reference == "refunds@example.com"
    )  # restored locally, and its quote checked against the document
    assert item.metadata["source"]["quote"] == contact
