"""``evals docs [TOPIC]``: the reference docs that ship in the package, so pip users have them too."""

from __future__ import annotations

import click
from rich.markdown import Markdown

from evals.cli.common import out, plain
from evals.cli.examples import with_examples
from evals.defaults import doc_topics
from evals.errors import EvalsError

DOCS_EXIT_HELP = "\b\nExit codes:\n  0  shown\n  2  no such topic (the line names the topics)"


@click.command("docs", epilog=with_examples(DOCS_EXIT_HELP, "docs"))
@click.argument("topic", required=False)
@click.option("--raw", is_flag=True, help="Print the Markdown as it is, even on a terminal.")
def docs(topic: str | None, raw: bool) -> None:
    """List the reference topics with a line each, or show TOPIC.

    A topic is rendered on a terminal and printed as Markdown when piped (or with --raw). The same pages are
    in the repository under evals/defaults/docs/.
    """
    topics = doc_topics()
    if topic is None:
        width = max(len(name) for name in topics)
        for listed in topics.values():
            out.print(plain(f"{listed.name:<{width}}  {listed.title}"), soft_wrap=True)
        out.print("\nShow one with: evals docs TOPIC")
        return
    page = topics.get(topic.removesuffix(".md"))
    if page is None:
        raise EvalsError(f"no docs topic {topic!r}; the topics are: {', '.join(topics)}")
    if out.is_terminal and not raw:
        out.print(Markdown(page.text))
    else:
        click.echo(page.text, nl=False)
