"""Exit codes of kiemke-agent (docs/agent-config.md, "Exit codes")."""

EXIT_OK = 0
EXIT_ERROR = 1  # unexpected error; the message says what, -v shows the traceback
EXIT_CONFIG = 2  # wrong command line or configuration; the message names file and key
EXIT_SPOOLED = 3  # not delivered now, kept in the spool (enroll: collector unreachable)
EXIT_NOT_ENROLLED = 4  # not enrolled, or the collector refused the credentials / token
EXIT_REJECTED = 5  # the collector rejected the report (moved to spool/rejected/)
EXIT_SPOOL_FAILED = 6  # the spool could not keep the report (disk full, read-only): it was
#                       sent directly (the message says whether it was accepted)
