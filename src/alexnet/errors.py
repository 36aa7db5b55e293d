"""The one exception type the CLI turns into a one-line message (no traceback), and the
format-version check every file format of the project shares."""


def printable(text: str) -> str:
    """``text`` from a file as a one-line message shows it: control characters escaped
    (a newline in a name would split the line)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class UserError(Exception):
    """A problem the user can fix: bad input, a missing file, a wrong checkpoint.

    The message is printed as ``alexnet: error: <message>`` and the CLI exits
    with ``exit_code`` (default 1). ``--debug`` shows the traceback as well.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def check_format_version(
    version: object, *, what: str, source: str, newest: int, oldest: int = 1, recreate: str = ""
) -> int:
    """``version`` as an int in ``oldest..newest``, else a one-line UserError naming both
    versions: a newer file asks for a newer alexnet, an older one says how to convert it
    (``recreate``: the command)."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise UserError(f"{source}: {what} format version {version!r} is not a version")
    readable = f"format {newest}" if oldest == newest else f"formats {oldest}..{newest}"
    if version > newest:
        raise UserError(
            f"{source} was written in {what} format {version}; this alexnet reads "
            f"{readable}: upgrade alexnet to load it"
        )
    if version < oldest:
        how = f": re-create it with {recreate}" if recreate else ""
        raise UserError(
            f"{source} was written in {what} format {version}, which this alexnet no longer "
            f"reads (it reads {readable}){how}"
        )
    return version
