"""Helpers the explorer test modules share (imported by name: the test folders are no
packages, and pytest puts each test file's folder on sys.path)."""

from __future__ import annotations


def significant(text: str) -> int:
    """Significant digits of one formatted number."""
    mantissa = text.lstrip("-").replace(",", "").split("e")[0]
    if "." not in mantissa:
        mantissa = mantissa.rstrip("0") or "0"  # 1,300: two or three figures, not four
    return len(mantissa.replace(".", "").lstrip("0"))
