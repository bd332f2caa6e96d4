"""loadgen's exit statuses, in one place because scripts and CI branch on them."""

OK = 0            # the run completed and every threshold held
THRESHOLD = 1     # a threshold (or, for capacity, the SLOs at the start rate) failed
INPUT = 2         # bad input: one line on stderr, nothing sent
BROKEN = 3        # the run itself broke; partial results are still saved
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)

BY_STATUS = {"complete": OK, "interrupted": INTERRUPTED, "failed": BROKEN}
