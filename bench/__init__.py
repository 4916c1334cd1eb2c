"""ekws benchmark suite: throughput, latency, many connections and footprint.

Programs, not timed tests: ``python bench/run.py`` (or ``python -m bench``)
prints absolute figures and ratios against baselines measured in the same run.
See bench/README.md.
"""
