"""Safe file input and output: atomic writes, restricted unpickling, locked CSV appends.

Every file the project writes goes through ``atomic_write`` (a temporary file in the same folder,
flushed, fsynced and renamed over the target), so an interrupted run leaves either the old file
or the new one, never a truncated one. Pickles are read with ``SafeUnpickler``, which refuses
every global except the few numpy constructors that the fold records need.
"""

import contextlib
import csv
import fcntl
import io
import json
import logging
import os
import pickle
import tempfile

import torch

logger = logging.getLogger(__name__)


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file next to ``path`` and rename it to ``path`` when the block succeeds."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary_path = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                                              suffix=".tmp")
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(handle, mode, encoding=encoding) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp creates files readable by the owner only; give them the usual permissions.
        os.chmod(temporary_path, 0o666 & ~_current_umask())
        os.replace(temporary_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary_path)
        raise


def write_text(path, text):
    """Write ``text`` to ``path`` atomically."""
    with atomic_write(path, "w") as stream:
        stream.write(text)


def write_json(path, data):
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_torch(path, data):
    """Save a tensor dictionary with ``torch.save`` atomically."""
    buffer = io.BytesIO()
    torch.save(data, buffer)
    with atomic_write(path) as stream:
        stream.write(buffer.getvalue())


def load_torch(path, map_location="cpu"):
    """Load a file written by ``save_torch`` without executing code from it."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafePickleError(f"{path}: rejected because it contains objects other than tensors "
                                f"and plain containers ({error})") from error


def save_figure(figure, path, dpi=120):
    """Save a matplotlib figure as PNG atomically."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    with atomic_write(path) as stream:
        stream.write(buffer.getvalue())


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside the allow-list, or is not a project record."""


# The globals a pickled numpy array needs, under both numpy 1.x and 2.x module names.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.dtypes", "UInt8DType"),
    ("numpy.dtypes", "Int64DType"),
    ("numpy.dtypes", "Int32DType"),
    ("numpy.dtypes", "Float32DType"),
}


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that accepts plain containers and numpy arrays, and nothing that can run code."""

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(f"global {module}.{name} is not allowed in a project pickle")


def save_pickle(path, data):
    """Pickle ``data`` to ``path`` atomically."""
    with atomic_write(path) as stream:
        pickle.dump(data, stream, protocol=pickle.HIGHEST_PROTOCOL)


def load_pickle(path):
    """Load a pickle written by ``save_pickle`` with ``SafeUnpickler``; errors name the file."""
    try:
        with open(path, "rb") as stream:
            return SafeUnpickler(stream).load()
    except UnsafePickleError as error:
        raise UnsafePickleError(f"{path}: rejected: {error}. Only fold files written by this "
                                f"project's partition scripts can be read; re-run the partition "
                                f"script to recreate it") from error
    except (EOFError, pickle.UnpicklingError, ValueError) as error:
        raise ValueError(f"{path}: truncated or not a pickle ({error}); re-run the partition "
                         f"script to recreate it") from error


@contextlib.contextmanager
def file_lock(path):
    """Hold an exclusive ``flock`` on ``path + '.lock'`` for the duration of the block."""
    lock_path = path + ".lock"
    os.makedirs(os.path.dirname(os.path.abspath(lock_path)), exist_ok=True)
    with open(lock_path, "a") as lock_stream:
        fcntl.flock(lock_stream.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_stream.fileno(), fcntl.LOCK_UN)


def read_csv_rows(path):
    """Return the rows of a CSV file as dictionaries, or an empty list when it does not exist."""
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def append_csv_rows(path, rows, fieldnames, key_fields=()):
    """Append ``rows`` to the CSV at ``path`` under a file lock, rewriting it atomically.

    Rows whose ``key_fields`` match an existing row replace it, so rescoring a task does not
    duplicate its rows. Existing columns missing from ``fieldnames`` are kept.
    """
    rows = [{name: str(value) for name, value in row.items()} for row in rows]
    with file_lock(path):
        existing = read_csv_rows(path)
        if key_fields:
            new_keys = {tuple(row[name] for name in key_fields) for row in rows}
            existing = [row for row in existing
                        if tuple(row.get(name, "") for name in key_fields) not in new_keys]
        columns = list(fieldnames)
        for row in existing:
            columns += [name for name in row if name not in columns]
        with atomic_write(path, "w") as stream:
            writer = csv.DictWriter(stream, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            for row in existing + list(rows):
                writer.writerow({name: row.get(name, "") for name in columns})
