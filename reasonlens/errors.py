"""The one exception users see: every message names the input, what was wrong and the fix."""


class ReasonlensError(Exception):
    """Bad input or an unusable resource. The CLI turns it into one red line and exit code 1."""
