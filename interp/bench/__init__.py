"""Benchmarks: commands that print ratios, never timed assertions in the tests.

* :mod:`~interp.bench.patching`: our engine against TransformerLens and nnsight;
* :mod:`~interp.bench.kernels`: the Triton kernels' bandwidth and the hooks' cost;
* :mod:`~interp.bench.timing`: the one timing rule they share.
"""
