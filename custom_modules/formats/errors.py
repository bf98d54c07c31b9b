"""The one error type for bad input files."""


class FormatError(ValueError):
    """A file is missing or malformed. The message starts with the file's path, so a
    command-line tool can print it as a one-line error."""
