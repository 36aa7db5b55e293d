"""The one exception type the CLI turns into a one-line message (no traceback)."""


class UserError(Exception):
    """A problem the user can fix: bad input, a missing file, a wrong checkpoint.

    The message is printed as ``alexnet: error: <message>`` and the CLI exits
    with ``exit_code`` (default 1). ``--debug`` shows the traceback as well.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
