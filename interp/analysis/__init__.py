"""Analyses as units: the :class:`Analysis` shape, the registry by kind and the one runner.

* :mod:`~interp.analysis.base`: :class:`AnalysisConfig`, :class:`Analysis`, :class:`Result`;
* :mod:`~interp.analysis.registry`: every analysis by kind, imported only when asked for;
* :mod:`~interp.analysis.runner`: :func:`run_analysis`, what every run directory shares.

A notebook runs any analysis the way the command line does::

    from interp.analysis import run_analysis, get
    analysis = get("circuit")
    path = run_analysis(analysis, analysis.config_type(prompts=64), out="runs",
                        model="organism", task="sentiment_arbitrary")
"""

from interp.analysis.base import Analysis, AnalysisConfig, CostEstimate, Result, config_from
from interp.analysis.registry import AnalysisEntry, entries, entry, get, register
from interp.analysis.runner import ExecutionOptions, open_executor, run_analysis, write_result

__all__ = [
    "Analysis",
    "AnalysisConfig",
    "AnalysisEntry",
    "CostEstimate",
    "ExecutionOptions",
    "Result",
    "config_from",
    "entries",
    "entry",
    "get",
    "open_executor",
    "register",
    "run_analysis",
    "write_result",
]
