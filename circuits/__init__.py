"""iclscope circuits (see DESIGN.md)."""
