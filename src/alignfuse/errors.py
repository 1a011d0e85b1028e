"""The one exception type for errors a user can cause; the CLI prints it without a traceback."""


class AlignfuseError(Exception):
    """Bad input (config, file, archive, checksum): the message names the thing and the fix."""
