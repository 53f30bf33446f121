"""The web server as ``benchmarks/load.py --profile`` runs it: uvicorn in this process, sampled.

    python benchmarks/profiled_server.py OUT.txt --port 8123

A sampling thread records every other thread's Python stack every ``--interval-ms``
(``sys._current_frames``), skipping threads that wait (the event loop in its poll, an idle
executor thread). cProfile would see only the thread that enables it, and Django runs sync views
in an executor thread under ASGI. When the server stops (SIGTERM), OUT.txt gets the functions
with the most samples, on top of the stack ("self") and anywhere in it ("inclusive"), and
OUT.txt's ``.folded`` sibling the collapsed stacks (flamegraph.pl / speedscope input).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType

# Frames a thread sits in while it has nothing to do.
IDLE = {
    ("base_events.py", "run_forever"),
    ("base_events.py", "run_until_complete"),
    ("runners.py", "run"),
    ("thread.py", "_worker"),
    ("threading.py", "wait"),
    ("threading.py", "_wait_for_tstate_lock"),
    ("queue.py", "get"),
    ("selectors.py", "select"),
    ("server.py", "serve"),
    ("server.py", "main_loop"),
}


def _stack(frame: FrameType | None) -> list[str]:
    names = []
    while frame is not None:
        code = frame.f_code
        names.append(f"{Path(code.co_filename).name}:{code.co_name}")
        frame = frame.f_back
    return names[::-1]


class Sampler(threading.Thread):
    def __init__(self, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.interval_s = interval_s
        self.stacks: Counter[tuple[str, ...]] = Counter()
        self.stopped = threading.Event()

    def run(self) -> None:
        me = threading.get_ident()
        while not self.stopped.wait(self.interval_s):
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                code = frame.f_code
                if (Path(code.co_filename).name, code.co_name) in IDLE:
                    continue
                self.stacks[tuple(_stack(frame))] += 1

    def report(self, out: Path) -> None:
        total = sum(self.stacks.values()) or 1
        own: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        for stack, count in self.stacks.items():
            own[stack[-1]] += count
            for name in set(stack):
                inclusive[name] += count
        lines = [f"{total} busy samples"]
        for title, counter in (("self", own), ("inclusive", inclusive)):
            lines.append(f"\n## {title}")
            for name, count in counter.most_common(60):
                lines.append(f"{100 * count / total:5.1f}%  {name}")
        out.write_text("\n".join(lines) + "\n")
        folded = (f"{';'.join(stack)} {count}" for stack, count in self.stacks.items())
        out.with_suffix(".folded").write_text("\n".join(folded) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval-ms", type=float, default=2.0)
    args = parser.parse_args()
    import uvicorn

    # uvicorn shuts down on SIGTERM, then raises it again for the handler it found: make that
    # one an exit, so the report below is written.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sampler = Sampler(args.interval_ms / 1000)
    # load.py sends SIGUSR1 when its clients start: what came before (imports, start-up) is dropped.
    signal.signal(signal.SIGUSR1, lambda *_: sampler.stacks.clear())
    sampler.start()
    started = time.monotonic()
    try:
        uvicorn.run(
            "webapp.asgi:application",
            host="127.0.0.1",
            port=args.port,
            lifespan="off",
            log_level="warning",
            access_log=False,
        )
    finally:
        sampler.stopped.set()
        sampler.join()
        sampler.report(args.out)
        print(f"profile of {time.monotonic() - started:.0f} s written to {args.out}", flush=True)


if __name__ == "__main__":
    main()
