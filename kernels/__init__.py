"""iclscope kernels (see DESIGN.md)."""
