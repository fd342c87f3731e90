"""Errors a user can fix: the CLI prints them as one clear message, without a traceback."""


class UserError(Exception):
    """Bad input or a missing file; the message names the problem and the fix."""
