"""The one exception type for data problems a user can fix.

Why one type: run.py catches it and prints its message instead of a traceback, so the message
must stand alone: what was looked for, where, what was found instead, and how to fix it.
"""


class DataError(Exception):
    """A user-fixable data problem; the message is always a single line."""

    def __init__(self, message: str):
        # Collapse newlines/tabs (e.g. from wrapped exception text) so the message stays one line.
        super().__init__(" ".join(str(message).split()))
