"""The one error type users see: its message is a single line that says what to fix."""


class EnlivenError(Exception):
    """Bad input or an impossible request; the CLI prints the message and exits with code 2."""


class NoFaceError(EnlivenError):
    """No face could be found where one is required."""
