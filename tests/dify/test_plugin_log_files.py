"""Plugin log files: size-capped and rotated, and read on from a cursor without gaps or repeats."""

from __future__ import annotations

from pathlib import Path

import pytest

from pluginkv.errors import InvalidArgument
from pluginkv.host.plugin_logs import PluginLogs

PLUGIN = "acme/chatty"


def _logs(tmp_path: Path) -> PluginLogs:
    return PluginLogs(tmp_path, max_bytes=1024, backups=2)


def test_a_log_is_rotated_at_its_size_and_keeps_the_backups_the_setting_says(
    tmp_path: Path,
) -> None:
    logs = _logs(tmp_path)
    for n in range(200):
        logs.of(PLUGIN).write("pid 1 stderr", f"line {n:03d}")
    logs.close()
    folder = tmp_path / "plugin-logs" / "acme"
    assert sorted(p.name for p in folder.iterdir()) == [
        "chatty.log",
        "chatty.log.1",
        "chatty.log.2",
    ]
    assert all(p.stat().st_size <= 1024 for p in folder.iterdir())
    assert (folder / "chatty.log").read_text().splitlines()[-1].endswith("pid 1 stderr: line 199")


def test_reading_on_from_the_cursor_gives_every_line_once_across_rotations(
    tmp_path: Path,
) -> None:
    logs = _logs(tmp_path)
    log = logs.of(PLUGIN)
    cursor = logs.read(PLUGIN, lines=0, cursor=None).cursor
    read: list[str] = []
    for n in range(60):
        log.write("host", f"line {n:03d}")
        if n % 7 == 0:  # a reader polling now and then, a rotation in between at most
            page = logs.read(PLUGIN, lines=0, cursor=cursor)
            read += page.text.splitlines()
            cursor = page.cursor
    while True:
        page = logs.read(PLUGIN, lines=0, cursor=cursor)
        read += page.text.splitlines()
        cursor = page.cursor
        if not page.more and not page.text:
            break
    logs.close()
    assert [line.rsplit(" ", 1)[1] for line in read] == [f"{n:03d}" for n in range(60)]


def test_the_last_lines_span_the_rotated_file(tmp_path: Path) -> None:
    logs = _logs(tmp_path)
    for n in range(30):
        logs.of(PLUGIN).write("host", f"line {n:03d}")
    page = logs.read(PLUGIN, lines=25, cursor=None)
    logs.close()
    assert [line[-3:] for line in page.text.splitlines()] == [f"{n:03d}" for n in range(5, 30)]


def test_a_line_longer_than_a_file_is_cut_to_one(tmp_path: Path) -> None:
    logs = _logs(tmp_path)
    logs.of(PLUGIN).write("pid 1 stdout", "x" * 5000)
    logs.close()
    (line,) = logs.path(PLUGIN).read_text().splitlines()
    assert line.endswith(" [cut]") and len(line) <= 1024 + len(" [cut]")


def test_a_cursor_that_no_page_gave_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="cursor"):
        _logs(tmp_path).read(PLUGIN, lines=10, cursor="../etc")


def test_a_log_that_cannot_be_written_is_skipped_and_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "plugin-logs").write_text("a file where the folder should be")
    logs = _logs(tmp_path)
    logs.of(PLUGIN).write("host", "one")
    logs.of(PLUGIN).write("host", "two")
    (said,) = [r.getMessage() for r in caplog.records if "cannot write" in r.getMessage()]
    assert said.startswith(f"cannot write the plugin log {logs.path(PLUGIN)}: ")
    assert "Not a directory" in said
