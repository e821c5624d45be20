"""``swapcam bench``: run the real pipeline and measure it.

The pieces: ``stamps`` (a source wrapper that stamps frames and remembers when
they were captured, a sink that decodes them, and the check that compares
what the stamps saw with what the counters say), ``runner`` (warm-up, rounds,
aggregation), ``overrides`` (``--compare``/``--sweep`` as overrides of the
``run`` options), ``report`` (terminal tables), ``schema`` (the JSON report
schema and writer), ``plot`` and ``loopback`` (the virtual-camera hop).
"""
