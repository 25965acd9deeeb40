"""The one exception family users see: every message names the input, what was wrong and the fix."""


class ReasonlensError(Exception):
    """Bad input or an unusable resource. The CLI turns it into one red line and exit code 1."""


class AnalysisFolderError(ReasonlensError):
    """A malformed or unfinished analysis folder: ``file`` is the offending file, ``field`` the key in it (or None)."""

    def __init__(self, message: str, file=None, field: str | None = None):
        super().__init__(message)
        self.file, self.field = file, field
