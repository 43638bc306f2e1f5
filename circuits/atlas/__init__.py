"""The ICL atlas of a model: every head's role scores from the other analyses, side by side.

The atlas composes the registered analyses (the ICL circuit, task vectors, eviction and block
relevance) on one model, reads one score per (layer, head) from each, turns each score into a
role set by a rule, and asks which role sets share heads more than chance would.
"""
