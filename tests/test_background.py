"""mflow.background: the stoppable daemon thread that heartbeats and log copiers run on."""

import subprocess
import sys
import time

import pytest

from mflow.background import DaemonThread, StopSignal

# A target that raises has its error printed (as threading prints it); pytest reports that late.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def test_stop_signal_waits_until_set_and_stays_set():
    signal = StopSignal()
    started = time.monotonic()
    assert signal.wait(0.05) is False and time.monotonic() - started >= 0.04
    assert not signal.is_set()
    signal.set()
    signal.set()  # twice is harmless
    assert signal.wait(5) is True and signal.wait(0) is True and signal.is_set()


def test_a_thread_is_stopped_and_joined():
    signal, ticks = StopSignal(), []

    def loop():
        while not signal.wait(0.01):
            ticks.append(1)

    thread = DaemonThread(loop).start()
    time.sleep(0.1)
    assert thread.join(0.01) is False  # still running
    signal.set()
    assert thread.join(5) is True and thread.join() is True
    assert ticks


def test_a_failing_target_still_counts_as_ended():
    def fail():
        raise RuntimeError("boom")

    thread = DaemonThread(fail).start()
    assert thread.join(5) is True


def test_a_running_thread_does_not_hold_the_process_at_exit():
    code = ("from mflow.background import DaemonThread\nimport time\n"
            "DaemonThread(lambda: time.sleep(60)).start()\nprint('bye')\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.stdout == "bye\n" and done.returncode == 0
    assert time.monotonic() - started < 30
