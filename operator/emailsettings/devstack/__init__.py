"""The embedded local stack: a real control plane, SMTP servers and a local CA.

Shared by the README's run command, the tests and the benchmarks; the product's
operator and sidecar never import it.
"""
