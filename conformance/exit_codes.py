"""The exit codes every command shares: 0 success (a run's decision is pass), 1 a finding (a decision that is
not pass, an altered signed record, a selftest hole), 2 bad input, 3 a harness or environment error."""

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_HARNESS = 0, 1, 2, 3
