"""Expected errors and their one-line wording, shared by the batch runner, evaluation and the CLI.

No imports from the package: every room may use it.
"""
from __future__ import annotations

import errno

# The errors that bad input or a hostile environment cause: unreadable or hostile files and configs
# (UnreadableImageError, ConfigError, UnsafePathError, UnicodeError are ValueErrors), the OS (full disk,
# permissions, a folder where a file should be), a decoder out of memory, torch's own errors (CUDA out
# of memory is a RuntimeError). The CLI turns them into one line; a batch records them per file and goes on.
EXPECTED_ERRORS = (ValueError, OSError, MemoryError, RuntimeError)
PER_FILE_ERRORS = EXPECTED_ERRORS

_OS_HINTS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EACCES: "permission denied",
    errno.EROFS: "the file system is read-only",
    errno.EISDIR: "a folder stands where a file is expected",
    errno.ENOTDIR: "a file stands where a folder is expected",
}


def one_line(err: BaseException, limit: int = 300) -> str:
    """A one-line description of an expected error: the OS's words (and the file) for OS errors, the
    first line of the message otherwise."""
    if isinstance(err, OSError) and err.strerror:
        hint = _OS_HINTS.get(err.errno or 0)
        text = err.strerror + (f" ({hint})" if hint and hint.lower() != err.strerror.lower() else "")
        if err.filename:
            text += f": {err.filename}"
    elif isinstance(err, MemoryError):
        text = "not enough memory" + (f" ({err})" if str(err) else "")
    else:
        message = str(err).strip()
        text = message.splitlines()[0] if message else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def printable(text: str) -> str:
    """``text`` safe to print on any terminal: undecodable file-name bytes shown as \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
