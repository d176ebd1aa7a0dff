"""parallel_map and parallel_imap_unordered: real processes, order, errors."""

import os
import time

import pytest

from mflow import parallel_imap_unordered, parallel_map
from mflow.flow.parallel import RemoteTraceback


def test_results_in_input_order_from_other_processes():
    me = os.getpid()
    results = parallel_map(lambda x: (x * x, os.getpid()), range(20), max_parallel=4)
    assert [r[0] for r in results] == [x * x for x in range(20)]
    assert all(pid != me for _, pid in results)


def test_unordered_yields_as_items_finish():
    def nap(seconds):
        time.sleep(seconds)
        return seconds

    assert list(parallel_imap_unordered(nap, [0.6, 0.0, 0.3], max_parallel=3)) == [0.0, 0.3, 0.6]


def test_runs_in_parallel():
    started = time.time()
    parallel_map(time.sleep, [0.5] * 4, max_parallel=4)
    assert time.time() - started < 1.9  # four half-second naps at once, not one after another


def test_the_first_worker_exception_is_raised_with_its_traceback():
    def check(x):
        if x == 3:
            raise ValueError("bad item %d" % x)
        return x

    with pytest.raises(ValueError, match="bad item 3") as excinfo:
        parallel_map(check, range(6), max_parallel=2)
    cause = excinfo.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "in check" in cause.text and "raise ValueError" in cause.text


def test_a_worker_that_dies_is_reported():
    with pytest.raises(RuntimeError, match=r"a parallel_map worker died: killed by signal 9 \(SIGKILL\)"):
        parallel_map(lambda x: os.kill(os.getpid(), 9), [1])


def test_empty_input_and_bad_max_parallel():
    assert parallel_map(str, []) == []
    with pytest.raises(ValueError, match="max_parallel must be at least 1"):
        parallel_map(str, [1], max_parallel=-1)
