"""Numbers only: histograms and tallies, merging, thresholds, verdicts, capacity search,
significance."""
