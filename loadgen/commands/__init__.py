"""Commands: orchestration and terminal I/O only (run, capacity, compare, report, demo)."""
