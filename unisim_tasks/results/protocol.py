"""The evaluation protocol a leaderboard ranks by: runs of another protocol are never ranked together.

Bump ``PROTOCOL_VERSION`` with every change that can change a run's scores: the scoring rules
(``unisim_models/scoring.py``, ``tasks/utils.py`` process_results and the averages, ``tasks/parsing.py``,
``tasks/retrieval.py``), the prompts (``tasks/templates/``, ``tasks/prompts.py``), the task YAMLs'
generation settings, or what a builder samples (then also its ``version``). Submissions record the
version they were made under; ``leaderboard validate`` refuses any other, and the page shows older
ones in a section of their own.
"""

from __future__ import annotations

from ..data.schema import EVAL_SETS

PROTOCOL_VERSION = 1

# A submission covers the whole benchmark (the 25 sets of Table 1, optionally with N-alternative
# results beside), or holds N-alternative results alone (the paper's Fig. 4).
BENCHMARK_SETS = EVAL_SETS
NAFC_SETS = ("it2afc_hpdv2_nafc",)
