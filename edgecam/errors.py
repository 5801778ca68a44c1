"""The one exception type whose message is shown to a user as-is."""


class EdgecamError(Exception):
    """A user-facing failure: its message names the thing that is wrong and the fix.

    The CLI prints it as one line on stderr and exits non-zero, without a traceback.
    """

    exit_code = 2

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
