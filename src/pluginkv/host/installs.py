"""Which plugin directories are installed for which workspaces, kept in the data directory.

``<data_dir>/dify-plugins.json``, rewritten whole (through a temporary file
and a rename, so a crash leaves the old or the new list, never half of one)
at each install and uninstall; the service starts every plugin it lists.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ..private_files import write_private_text

__all__ = ["INSTALLS_FILE", "Install", "Installs"]

logger = logging.getLogger("pluginkv.dify")

INSTALLS_FILE = "dify-plugins.json"


@dataclass(frozen=True, slots=True)
class Install:
    plugin: str
    directory: str
    workspaces: tuple[str, ...]


class Installs:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / INSTALLS_FILE

    def load(self) -> list[Install]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            return [
                Install(entry["plugin"], entry["directory"], tuple(entry["workspaces"]))
                for entry in document["plugins"]
            ]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.error("cannot read %s (%s): no plugin is started from it", self.path, exc)
            return []

    def save(self, installs: list[Install]) -> None:
        document = {
            "plugins": [
                {"plugin": i.plugin, "directory": i.directory, "workspaces": sorted(i.workspaces)}
                for i in sorted(installs, key=lambda i: i.plugin)
            ]
        }
        write_private_text(self.path, json.dumps(document, indent=2) + "\n")
