"""Errors of `kubetune.Client`: each one line that says what went wrong and what to do."""

from __future__ import annotations


class ClientError(Exception):
    """A request the client could not carry out; `str()` is one line for people."""


class NotFound(ClientError):
    """The job (or trial, or pod) does not exist."""


class AlreadyExists(ClientError):
    """A job of that name exists already."""


class Forbidden(ClientError):
    """The credentials may not do this (RBAC), or were rejected."""


class Unavailable(ClientError):
    """The API server cannot be reached, or does not serve kubetune's resources."""


class ConfigError(ClientError):
    """No usable credentials or work directory."""


class JobFinished(ClientError):
    """The job has finished, so this change can no longer apply."""


class WaitTimeout(ClientError, TimeoutError):
    """`wait` ran out of time before the job finished."""


class UsageError(ClientError):
    """A wrong command line (the CLI exits 2)."""
