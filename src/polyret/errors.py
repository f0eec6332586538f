"""User-facing errors.

Anything a user can cause (bad file, missing package, unknown model name) raises `PolyretError`
with one sentence naming the file/record; the CLI prints it without a traceback and exits 2.
"""


class PolyretError(Exception):
    """An error caused by user input or environment, reported without a traceback."""
