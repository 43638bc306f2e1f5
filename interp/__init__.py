"""iclscope: hooked models, prompts, runs."""
