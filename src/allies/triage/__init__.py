"""Case 4: triage of access logs — failed requests, affected allies, whether they recovered, and
what to do for each.

`analysis` reads the logs in blocks and builds the report; `logparse` says what one block holds
(the grammar, written as regular expressions); `_logscan.c` is its scanning core in C;
`remediation` joins the affected allies to the database and plans what to do.
"""

from .analysis import AllyStats, Report, Timeline, TriageError, analyze
from .logparse import Window

__all__ = ["AllyStats", "Report", "Timeline", "TriageError", "Window", "analyze"]
