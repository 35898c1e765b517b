"""pluginkv: persistent, workspace-scoped key-value storage for plugins."""

from __future__ import annotations

from .api import (
    AsyncChangesAPI,
    AsyncCommitBuilder,
    AsyncStorageAPI,
    ChangesAPI,
    CommitBuilder,
    StorageAPI,
)
from .commits import Commit
from .config import Settings
from .errors import (
    BackendUnavailable,
    ChangesExpired,
    DiskFull,
    Forbidden,
    InvalidArgument,
    InvalidExportFile,
    InvalidKey,
    InvalidValueType,
    NotSupported,
    PluginFailed,
    PluginKVError,
    PluginNotFound,
    PluginTimeout,
    QuotaExceeded,
    ReadOnly,
    Unauthorized,
    ValueTooLarge,
    VersionConflict,
    WrongValueType,
)
from .models import Change, ChangePage, CommitResult, Entry, EntryMeta, Page, Usage
from .storage import Storage
from .store import Store, open_store
from .watching import ChangeWaiter

__version__ = "0.1.0"

__all__ = [
    "AsyncChangesAPI",
    "AsyncCommitBuilder",
    "AsyncStorageAPI",
    "BackendUnavailable",
    "Change",
    "ChangePage",
    "ChangeWaiter",
    "ChangesAPI",
    "ChangesExpired",
    "Commit",
    "CommitBuilder",
    "CommitResult",
    "DiskFull",
    "Entry",
    "EntryMeta",
    "Forbidden",
    "InvalidArgument",
    "InvalidExportFile",
    "InvalidKey",
    "InvalidValueType",
    "NotSupported",
    "Page",
    "PluginFailed",
    "PluginKVError",
    "PluginNotFound",
    "PluginTimeout",
    "QuotaExceeded",
    "ReadOnly",
    "Settings",
    "Storage",
    "StorageAPI",
    "Store",
    "Unauthorized",
    "Usage",
    "ValueTooLarge",
    "VersionConflict",
    "WrongValueType",
    "open_store",
]
