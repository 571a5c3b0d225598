"""Evaluation: Pass@1 (and pass@k / maj@k) on the bundled benchmarks and self-correction accuracy."""
