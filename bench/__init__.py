"""Re-runnable benchmarks (see bench/README.md). Not part of the test suite."""
