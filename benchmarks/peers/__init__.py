"""Peer methods, each run as ``python -m benchmarks.peers.<module>`` in the peers' venv."""
