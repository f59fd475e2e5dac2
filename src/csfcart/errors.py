"""Errors the workflow reports to its users."""


class InputError(ValueError):
    """Bad input: the message names the file, row or key, and the fix."""
