"""pluginkv: persistent, workspace-scoped key-value storage for plugins."""

from __future__ import annotations

from .api import AsyncStorageAPI, StorageAPI
from .config import Settings
from .errors import (
    BackendUnavailable,
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
from .models import Entry, EntryMeta, Page, Usage
from .storage import Storage
from .store import Store, open_store

__version__ = "0.1.0"

__all__ = [
    "AsyncStorageAPI",
    "BackendUnavailable",
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
