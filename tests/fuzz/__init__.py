"""The fuzz harness for the bundle reader and loader (tests/fuzz/README.md says how to run it)."""
