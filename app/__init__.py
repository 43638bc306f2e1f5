"""The Streamlit explorer (``iclscope app``)."""
