"""Benchmarks: ``uv run python -m benchmarks <name> [args]``. One module per benchmark, each with ``main(argv)``
printing its measurements beside the reference libraries measured in the same run."""
