"""lookingglass: run domain suites against a local model and have a frontier judge score the answers.

The import package is ``evals``; the console command is ``evals``. Nothing here does work at import time.
"""

__version__ = "0.1.0"
