"""iclscope probes (see DESIGN.md)."""
