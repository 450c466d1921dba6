"""The one place a candidate template is read from a path: ``--variant template-file=PATH`` of
``llmscope experiment run``, in the CLI's own process, before anything is called.

The collector never reads a path a request names (``POST /api/v1/experiments`` takes the
candidate's text): a path given to a server is a file read on the server's host, and reading
the store's own SQLite file from inside the collector releases SQLite's locks on it. Here the
person running the command reads a file they can read anyway; still only a regular file
(a FIFO, a device or ``/dev/zero`` would block or never end), at most
``TEMPLATE_TEXT_MAX_BYTES``, in UTF-8. The checks are made on the opened file, so a path
swapped between a check and the read changes nothing.
"""

from __future__ import annotations

import os
import stat

from llmscope.experiment_report import TEMPLATE_TEXT_MAX_BYTES


class TemplateFileError(ValueError):
    """A template file that cannot be used; the message is one line."""


def read_template_file(path: str) -> str:
    """The text of the regular file at ``path``; TemplateFileError saying why not."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; a regular file ignores it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _unreadable(path, exc) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise TemplateFileError(f"template-file {path!r} is not a regular file")
        # one byte past the bound tells "too large" (st_size is 0 for some files)
        data = _read_at_most(fd, TEMPLATE_TEXT_MAX_BYTES + 1)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    finally:
        os.close(fd)
    if len(data) > TEMPLATE_TEXT_MAX_BYTES:
        raise TemplateFileError(
            f"template-file {path!r} is larger than {TEMPLATE_TEXT_MAX_BYTES // 1024} KiB "
            f"({TEMPLATE_TEXT_MAX_BYTES} bytes)"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TemplateFileError(
            f"template-file {path!r} is not UTF-8 text (byte {exc.start})"
        ) from None
    if not text.strip():
        raise TemplateFileError(f"template-file {path!r} is empty")
    return text


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit:
        chunk = os.read(fd, limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _unreadable(path: str, exc: OSError) -> TemplateFileError:
    return TemplateFileError(f"cannot read template-file {path!r}: {exc.strerror or exc}")
