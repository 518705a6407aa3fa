"""The error tree of loopml.

Every error loopml raises on purpose derives from :class:`LoopmlError`. The first level is
by meaning, and each class also subclasses the builtin exception callers already catch::

    LoopmlError
    ├── NotFound (LookupError)           a named object does not exist
    ├── AlreadyExists                    create_* met an existing object
    ├── InvalidInput (ValueError)        an argument is malformed or out of range
    │   └── UnsafeName                   a logical name could escape its namespace
    ├── InvalidState                     the object exists but cannot do that now
    │   ├── IllegalTransition            the lifecycle forbids this stage move
    │   ├── ParamConflict                a param was already set to another value
    │   └── ConcurrentModification       someone else changed the object first
    ├── IntegrityError                   stored bytes or history do not match their hash
    ├── StorageError (OSError)           the metadata or artifact store failed
    │   └── SchemaOutOfDate              the database needs `loopml db upgrade`
    ├── ConfigError                      settings or workspace are unusable
    └── PermissionDenied (PermissionError) an unsafe action was not explicitly trusted

Messages say what was wrong, the value received, what was expected and what to do next.
Domain errors know nothing of HTTP status codes or exit codes: the CLI and the server map
them once, by class.
"""

from __future__ import annotations


class LoopmlError(Exception):
    """Root of every error loopml raises on purpose."""


class NotFound(LoopmlError, LookupError):
    """A named object (run, model, version, artifact...) does not exist."""


class AlreadyExists(LoopmlError):
    """A ``create_*`` call met an object of the same identity."""


class InvalidInput(LoopmlError, ValueError):
    """An argument is malformed, of the wrong type or out of range."""


class UnsafeName(InvalidInput):
    """A logical name could escape its namespace (``..``, absolute, backslash, NUL...)."""


class InvalidState(LoopmlError):
    """The object exists but cannot perform the requested action in its current state."""


class IllegalTransition(InvalidState):
    """A lifecycle move that the state machine does not allow."""


class ParamConflict(InvalidState):
    """A run parameter was already set to a different value; params are immutable."""


class ConcurrentModification(InvalidState):
    """The object changed between reading it and writing it; retry with fresh state."""


class IntegrityError(LoopmlError):
    """Stored content or history does not match its recorded hash."""


class StorageError(LoopmlError, OSError):
    """The metadata store or the artifact store failed to read or write."""


class SchemaOutOfDate(StorageError):
    """The metadata database is at an older (or unknown) schema revision."""


class ConfigError(LoopmlError):
    """Settings, ``loopml.toml`` or the workspace layout are unusable."""


class PermissionDenied(LoopmlError, PermissionError):
    """An unsafe action (e.g. unpickling) was requested without explicit trust."""
