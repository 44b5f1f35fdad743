"""The exception tree every ForestGate layer raises, free of any transport.

    ForestGateError
    ├── UserError                     the command or call was used wrongly: CLIs exit 2
    │   ├── InvalidInput (ValueError)     bad request data; names the field and what was expected
    │   ├── ConfigError (ValueError)      a bad setting or configuration file; names the setting
    │   └── MissingFile (FileNotFoundError)  a file or directory the caller named is not there
    ├── NotFound (LookupError)        unknown model or version
    ├── Overloaded                    a queue is full: shed load now rather than later
    ├── DeadlineExpired               the caller's deadline passed before compute started
    ├── Unavailable                   draining or not ready; a retry elsewhere may succeed
    ├── BundleError                   a model bundle that cannot be trusted or opened
    └── CompileError                  a model that cannot be loaded, compiled or written
        ├── UnsupportedModel          a model type or task the compiler does not handle
        └── VerificationError         compiled predictions differ from the source framework

The server maps these to gRPC status codes at one boundary. The CLI prints their message on one
line, with no traceback, and exits 2 for a UserError (as argparse does for a bad flag) and 1 when
the work itself failed (a model that does not verify, a bundle that cannot be trusted). Messages
name the file, field or tensor they are about.
"""

from __future__ import annotations


class ForestGateError(Exception):
    """Base of every error ForestGate raises on purpose."""


class UserError(ForestGateError):
    """The caller asked for something that cannot be done as asked; fixing the call fixes it."""


class InvalidInput(UserError, ValueError):
    """Request data of the wrong shape, type or size."""


class ConfigError(UserError, ValueError):
    """A setting or configuration file with an invalid value; the message names it."""


class MissingFile(UserError, FileNotFoundError):
    """A file or directory the caller named does not exist."""


class NotFound(ForestGateError, LookupError):
    """An unknown model name or version."""


class Overloaded(ForestGateError):
    """A bounded queue is full; the request was not accepted."""


class DeadlineExpired(ForestGateError):
    """The request's deadline passed before its rows were computed."""


class Unavailable(ForestGateError):
    """The server or model is starting or draining."""


class BundleError(ForestGateError):
    """A bundle whose manifest, library or hash does not hold."""


class CompileError(ForestGateError):
    """A model that could not be turned into a verified bundle."""


class UnsupportedModel(CompileError):
    """A model type, task or feature the compiler does not handle."""


class VerificationError(CompileError):
    """Compiled predictions differ from the source framework's beyond the tolerance."""

    def __init__(self, message: str, report: str) -> None:
        super().__init__(message)
        self.report = report
