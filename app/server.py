"""The explorer's server process: Streamlit's own command line, started with what the first
page needs already imported.

Streamlit runs the page script in the server process, so a module imported before the server
answers is never imported while a user waits. The runs list needs pandas (it filters and sorts a
frame) and the run store; importing them here moves about a second of work from the first page
to the start-up, before the address is printed. Nothing that loads torch is imported here.
"""

from __future__ import annotations

import sys

import pandas  # noqa: F401
from streamlit import delta_generator
from streamlit.web import cli

import app.views  # noqa: F401

# Streamlit's first element in a process checks whether it runs in a REPL, to warn people who
# did not use ``streamlit run``: ``inspect.stack()`` reads the source of every frame, about
# 0.1 s on the first page before anything is sent. This process is ``streamlit run``: skip it.
delta_generator._use_warning_has_been_displayed = True

if __name__ == "__main__":
    sys.exit(cli.main())
