"""Every analysis iclscope ships, one package per method.

The name is historical: besides the ICL circuit (:mod:`circuits.icl_circuit`) this folder holds
every method, circuits or not: activation patching (:mod:`circuits.activation_patching`), task
vectors and soft injection (:mod:`circuits.task_vectors`), KV-cache eviction and the attention
gate (:mod:`circuits.eviction`), block relevance and BlockRank (:mod:`circuits.block_relevance`)
and the demo (:mod:`circuits.demo`). Each package owns its config, its run and its report, and
is registered by kind in :mod:`interp.analysis.registry`; see "Adding an analysis" in the docs.
"""
