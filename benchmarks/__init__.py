"""Side-by-side benchmarks of sci2cl against peers (run as ``python -m benchmarks.run``)."""
