"""Waiting for a condition in a test, with a bound."""
import time


def wait_until(what, fn, timeout=20.0, interval=0.1):
    """fn()'s first true value, polled every @interval s; fails after @timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)
