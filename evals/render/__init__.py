"""Renderings of a scorecard and of the other reports: HTML pages, Markdown, JUnit and terminal text.

* ``pages.py``: the scorecard as HTML and Markdown (``write_scorecard``) and the index of every run
  (``write_index``), made from the typed ``Scorecard``; charts as inline SVG (``charts.py``, drawn by
  ``templates/charts.html.j2``).
* ``gate.py``: the gate's verdict as Markdown and JUnit; ``route.py``: the routing table;
  ``calibration.py``: the calibration report's files; ``purge.py``: a purged run's exports written again
  without its text; ``panel.py``: a panel's section as terminal lines; ``markdown.py``: untrusted text
  inside Markdown.
* ``terminal.py``: text made safe to print on a terminal (the CLI's consoles and log handler).

Importing the package loads nothing: ``evals --help`` reads ``terminal.py`` without the store, the records
or pydantic, which ``pages.py`` needs.
"""
