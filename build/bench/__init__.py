"""Benchmarks that print figures and never assert them: rebuild times (rebuild.py) and serving
throughput against in-process and Flask baselines (serving/)."""
