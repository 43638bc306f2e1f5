"""``python -m interp.cli``: the same as the ``iclscope`` command."""

import sys

from interp.cli import main

sys.exit(main())
