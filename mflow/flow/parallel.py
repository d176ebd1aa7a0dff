"""parallel_map and parallel_imap_unordered: use every core of a task's machine from one step.

Each item runs in a forked process (so `fn` may be a lambda or a closure); results come
back pickled over a pipe, and the first worker exception is re-raised with its traceback.
"""

import os
import pickle
import selectors
import struct

_LENGTH = struct.Struct("!Q")


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process, attached as __cause__."""

    def __init__(self, text):
        super().__init__(text)
        self.text = text

    def __str__(self):
        return "\n" + self.text


def parallel_imap_unordered(fn, iterable, max_parallel=None):
    """Yield fn(item) for each item, computed in parallel processes, as each finishes.

    At most `max_parallel` (default: the number of CPUs) run at once. If a call raises,
    no new item starts, the running ones are stopped, and that exception is raised here.
    """
    for _, value in _run(fn, iterable, max_parallel):
        yield value


def parallel_map(fn, iterable, max_parallel=None):
    """[fn(item) for item in iterable], computed in parallel processes, in input order."""
    results = {}
    for index, value in _run(fn, iterable, max_parallel):
        results[index] = value
    return [results[i] for i in range(len(results))]


def _run(fn, iterable, max_parallel):
    limit = max_parallel or os.cpu_count() or 1
    if limit < 1:
        raise ValueError("max_parallel must be at least 1, not %r" % (max_parallel,))
    items = enumerate(iterable)
    running = {}  # read fd -> (pid, index, chunks)
    selector = selectors.DefaultSelector()
    failure = None
    try:
        exhausted = False
        while True:
            while not exhausted and failure is None and len(running) < limit:
                try:
                    index, item = next(items)
                except StopIteration:
                    exhausted = True
                    break
                reader, pid = _fork_worker(fn, item)
                running[reader] = (pid, index, [])
                selector.register(reader, selectors.EVENT_READ)
            if not running:
                break
            for key, _ in selector.select():
                reader = key.fd
                pid, index, chunks = running[reader]
                data = os.read(reader, 1 << 20)
                if data:
                    chunks.append(data)
                    continue
                selector.unregister(reader)
                os.close(reader)
                del running[reader]
                _, status = os.waitpid(pid, 0)
                ok, value = _decode(b"".join(chunks), status)
                if ok:
                    if failure is None:
                        yield index, value
                elif failure is None:
                    failure = value
        if failure is not None:
            raise failure
    finally:
        for reader, (pid, _, _) in running.items():
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            os.close(reader)
        selector.close()


def _fork_worker(fn, item):
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        code = 0
        try:
            try:
                payload = (True, fn(item))
            except BaseException as exc:  # the worker's own failure goes back to the caller
                import traceback

                payload = (False, (exc, traceback.format_exc()))
            data = _dumps(payload)
            with os.fdopen(writer, "wb") as pipe:
                pipe.write(_LENGTH.pack(len(data)) + data)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(writer)
    return reader, pid


def _dumps(payload):
    try:
        return pickle.dumps(payload, protocol=5)
    except Exception:
        ok, value = payload
        if ok:
            import cloudpickle

            try:
                return cloudpickle.dumps(payload, protocol=5)
            except Exception as exc:
                return pickle.dumps(
                    (False, (TypeError("the result of a parallel_map call cannot be pickled: %s" % exc), "")), 5
                )
        exc, trace = value
        return pickle.dumps((False, (RuntimeError("%s: %s" % (type(exc).__name__, exc)), trace)), 5)


def _decode(data, status):
    if len(data) < _LENGTH.size or len(data) - _LENGTH.size != _LENGTH.unpack_from(data)[0]:
        from mflow.process_status import describe_wait_status

        return False, RuntimeError("a parallel_map worker died: %s" % describe_wait_status(status))
    ok, value = pickle.loads(data[_LENGTH.size :])
    if ok:
        return True, value
    exc, trace = value
    if trace:
        exc.__cause__ = RemoteTraceback(trace)
    return False, exc
