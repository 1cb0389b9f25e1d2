"""Load benchmark of the hub: ``python -m bench`` (``make bench``); results go to docs/benchmarks.md.

The hub runs as its own process (``python -m router run``) on a fresh database; this process is the
load generator, speaking the same wire protocol as the widget and the staff pages.
"""
