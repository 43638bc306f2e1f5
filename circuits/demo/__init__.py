"""The demo: the first look at a model's in-context learning, in one run directory.

* :mod:`~circuits.demo.look`: the suite a tokenizer builds and one prompt looked inside;
* :mod:`~circuits.demo.report`: its tables, figures, summary and report (the circuit's own
  under a heading of their own);
* :mod:`~circuits.demo.analysis`: the config and the registered analysis.
"""
