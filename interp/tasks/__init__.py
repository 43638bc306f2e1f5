"""Task families: the natural-language suite and the organism language, one interface."""
