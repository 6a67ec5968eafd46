class CliError(Exception):
    """A user-facing error: printed as one line by `dividemix_cli.main`, exit status 2."""
