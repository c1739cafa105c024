"""Results of UniSim-Bench runs: reading lmms-eval's result files (``runs``), the paper's published
rows (``paper``) and the paper's Tables 6 and 8 built from both (``report``)."""

from .runs import DatasetResult, ResultsError, Run, read_runs

__all__ = ["DatasetResult", "ResultsError", "Run", "read_runs"]
