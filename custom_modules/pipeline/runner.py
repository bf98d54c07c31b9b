"""Run pipeline stages as the project's own command-line tools, resumably.

Each stage is one tool invocation whose outputs are known in advance: a stage whose
outputs all exist is skipped, so rerunning the driver resumes where it stopped. The
tool's full output goes to a log file; the console shows the stage, the dataset and
MMEngine's iteration lines (with their ETA), so progress stays visible.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Sequence

PROGRESS_LINE = re.compile(r'(Iter|Epoch)\((train|val|test)\)|Error|error:|eta:')


class StageFailed(RuntimeError):
    """A tool exited non-zero; the message names the stage and its log file."""


class StageRunner:
    """Runs commands, records the time spent per stage, skips finished stages.

    Safe to call from several threads (the driver's parallel jobs): each call owns its
    process and log file. Stage times add up the runs of a stage, so with parallel jobs
    they can exceed the wall-clock time.
    """

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.timings: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def run(self, stage: str, label: str, argv: Sequence[object], outputs: Sequence[Path] = (),
            env: Mapping[str, str] | None = None) -> bool:
        """Run ``argv`` unless every path in ``outputs`` exists.

        Returns whether it ran. ``stage`` groups the timing; ``label`` names this step
        in the console and in the log file name; ``env`` adds environment variables
        (e.g. the device slot of a parallel job).
        """
        if outputs and all(Path(p).exists() for p in outputs):
            print(f'[{stage}] {label}: done before, skipped')
            return False
        log_path = self.log_dir / f'{_slug(f"{stage}_{label}")}.log'
        log_path.parent.mkdir(parents=True, exist_ok=True)
        print(f'[{stage}] {label}: running (log: {log_path})', flush=True)
        start = time.monotonic()
        # progress lines as they happen; the shell launchers use this interpreter
        env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
        env.setdefault('PYTHON', sys.executable)
        with open(log_path, 'w', encoding='utf-8', buffering=1) as log:
            proc = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, bufsize=1, env=env)
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                if PROGRESS_LINE.search(line):
                    print(f'    [{stage} {label}] {_short(line)}', flush=True)
            code = proc.wait()
        elapsed = time.monotonic() - start
        with self._lock:
            self.timings[stage] += elapsed
        if code != 0:
            tail = ''.join(log_path.read_text(encoding='utf-8').splitlines(True)[-15:])
            raise StageFailed(f'{stage} {label} failed (exit {code}); see {log_path}:\n{tail}')
        print(f'[{stage}] {label}: finished in {elapsed:.0f} s', flush=True)
        return True

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Count the block's time (work done in this process) to ``stage``."""
        start = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                self.timings[stage] += time.monotonic() - start


def python_tool(script: str, *args: object) -> list[object]:
    """The argv that runs one of the project's Python tools with this interpreter."""
    return [sys.executable, script, *args]


def _slug(text: str) -> str:
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', text)


def _short(line: str) -> str:
    """MMEngine log lines without their timestamp prefix, shortened for the console."""
    line = re.sub(r'^\d+/\d+ \d+:\d+:\d+ - mmengine - \w+ - ', '', line.strip())
    return line if len(line) < 160 else line[:157] + '...'
