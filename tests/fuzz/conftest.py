"""Print the fuzz suite's counts at the end of the run: cases per class, how each ended, what failed."""

from fuzz_harness import TALLY


def pytest_terminal_summary(terminalreporter):
    if sum(TALLY.counts.values()):
        terminalreporter.section("fuzz")
        for line in TALLY.lines():
            terminalreporter.write_line(line)
        for outcome in TALLY.failures[:40]:
            terminalreporter.write_line(outcome.describe())
