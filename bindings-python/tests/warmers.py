"""Generators for the stratacache_warm command tests."""

CALLS = []


def outlines():
    for i in range(25):
        yield (f"outline:{i}", lambda i=i: CALLS.append(i) or {"course": i})


def some_fail():
    yield ("good", lambda: "ok")

    def boom():
        raise RuntimeError("course store unavailable")

    yield ("bad", boom)
    yield ("also good", lambda: "ok")


def not_pairs():
    yield "just a key"
