"""Stage scripts of the benchmark workflow."""
