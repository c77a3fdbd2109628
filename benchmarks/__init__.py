"""The achannels performance suite: plain scripts, run with ``python benchmarks/echo.py``."""
