"""The supervisor of ``serve --workers N``, on its own: workers that crash, workers that stop."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from pluginkv.server import workers as workers_module
from pluginkv.server.workers import Supervisor


def test_a_worker_that_keeps_dying_at_its_start_ends_the_service_with_status_3(
    tmp_path: Path,
) -> None:
    starts = tmp_path / "starts"

    def work(index: int) -> None:
        with starts.open("a") as file:
            file.write(f"{index}\n")
        raise SystemExit(1)

    assert Supervisor(1, work).run() == 3
    assert starts.read_text().split() == ["0"] * workers_module.QUICK_DEATHS_TO_GIVE_UP


def test_a_worker_that_dies_is_started_again_in_its_slot_and_sigterm_stops_all(
    tmp_path: Path,
) -> None:
    starts = tmp_path / "starts"

    def work(index: int) -> None:
        with starts.open("a") as file:
            file.write(f"{index}\n")
        if index == 1 and starts.read_text().split().count("1") == 1:
            os._exit(9)  # the first worker 1 crashes at once
        while True:
            time.sleep(0.05)

    def started(index: int) -> int:
        return starts.read_text().split().count(str(index)) if starts.exists() else 0

    def stop_later() -> None:
        deadline = time.monotonic() + 20
        while started(1) < 2 or started(0) < 1:
            if time.monotonic() > deadline:
                break  # the SIGTERM below ends the run, and the assertion says what is missing
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_later, daemon=True).start()
    assert Supervisor(2, work).run() == 0
    assert sorted(starts.read_text().split()) == ["0", "1", "1"]
