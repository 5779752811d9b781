"""Benchmarks against the real local control plane and real SMTP servers."""
