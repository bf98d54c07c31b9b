"""Run pipeline steps as the project's own command-line tools, resumably and knowingly.

A :class:`Step` names what one piece of work runs (its command line), what it reads (input
files, and the steps whose outputs it uses) and what it writes. Its fingerprint hashes all of
that, and a finished step leaves a record holding it: a rerun skips a step only when its
record's fingerprint is today's and its outputs exist, so changing an argument (iterations,
seed, a threshold, weights) or an input file redoes the step and, through their fingerprints,
every step that depends on it. The tool's full output goes to a log file; the console shows
the step and MMEngine's iteration lines (with their ETA), so progress stays visible.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

from custom_modules.formats import dump_json, load_json

# The tools' command lines name the project's files relative to the repository root.
REPO_ROOT = Path(__file__).resolve().parents[2]
PROGRESS_LINE = re.compile(r'(Iter|Epoch)\((train|val|test)\)|Error|error:|eta:')


class StageFailed(RuntimeError):
    """A tool exited non-zero; the message names the stage and its log file."""


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, or ``missing`` (a step may create what it reads later)."""
    if not path.is_file():
        return 'missing'
    with open(path, 'rb') as f:
        return hashlib.file_digest(f, 'sha256').hexdigest()


@dataclass(frozen=True, eq=False)
class Step:
    """One tool run of the pipeline.

    ``argv`` is the command (the interpreter excluded from the fingerprint, so a moved
    virtual environment does not redo the work); ``inputs`` are files whose bytes decide the
    result (configs, annotation files); ``after`` are the steps whose outputs this one reads,
    whose fingerprints stand in for those outputs' contents.
    """
    stage: str
    label: str
    argv: tuple[str, ...]
    outputs: tuple[Path, ...]
    inputs: tuple[Path, ...] = ()
    after: tuple[Step, ...] = field(default=())

    @cached_property
    def fingerprint(self) -> str:
        argv = list(self.argv[1:] if self.argv[:1] == (sys.executable, ) else self.argv)
        content = {
            'argv': argv,
            'inputs': {_portable(p): file_digest(p) for p in sorted(self.inputs)},
            'after': sorted(step.fingerprint for step in self.after),
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()

    @property
    def name(self) -> str:
        """File-system-safe name of the step (its log and record file names)."""
        return re.sub(r'[^A-Za-z0-9_.-]+', '_', f'{self.stage}_{self.label}')


def step(stage: str, label: str, argv: Sequence[object], outputs: Iterable[Path] = (),
         inputs: Iterable[Path] = (), after: Iterable[Step | None] = ()) -> Step:
    """A :class:`Step` from loose arguments (paths and numbers in ``argv`` become strings;
    ``None`` in ``after`` is dropped)."""
    return Step(stage, label, tuple(str(a) for a in argv), tuple(Path(p) for p in outputs),
                tuple(Path(p) for p in inputs), tuple(s for s in after if s is not None))


class StageRunner:
    """Runs steps, records the time spent per stage, skips steps already done as asked.

    Safe to call from several threads (the driver's parallel jobs): each call owns its
    process, log and record files. Stage times add up the runs of a stage, so with parallel
    jobs they can exceed the wall-clock time.
    """

    def __init__(self, work_dir: Path):
        self.log_dir = work_dir / 'logs'
        self.record_dir = work_dir / 'records'
        self.timings: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def _record_path(self, step: Step, state: str) -> Path:
        return self.record_dir / f'{step.name}.{state}.json'

    def _recorded(self, step: Step, state: str) -> str | None:
        path = self._record_path(step, state)
        return load_json(path).get('fingerprint') if path.is_file() else None

    def is_done(self, step: Step) -> bool:
        """Whether ``step`` finished with today's fingerprint and its outputs exist."""
        return (self._recorded(step, 'done') == step.fingerprint
                and all(p.exists() for p in step.outputs))

    def was_started(self, step: Step) -> bool:
        """Whether an unfinished run of ``step`` with today's fingerprint was interrupted
        (its partial outputs, e.g. a checkpoint to resume from, belong to it)."""
        return self._recorded(step, 'started') == step.fingerprint

    def run(self, step: Step, extra_argv: Sequence[object] = (),
            env: Mapping[str, str] | None = None, also_done: Sequence[Step] = ()) -> bool:
        """Run ``step`` (with ``extra_argv``, which does not change its fingerprint, e.g.
        ``--resume``) unless it is done; return whether it ran.

        ``also_done`` are steps the same command completes (one process doing the work of
        several, e.g. training then predicting): they are recorded with it. ``env`` adds
        environment variables (e.g. the device slot of a parallel job).
        """
        steps = [step, *also_done]
        if all(self.is_done(s) for s in steps):
            print(f'[{step.stage}] {step.label}: done before, skipped')
            return False
        recorded = [self._recorded(s, 'done') for s in steps]
        if any(r is not None and r != s.fingerprint for r, s in zip(recorded, steps)):
            print(f'[{step.stage}] {step.label}: its arguments or inputs changed, redoing')
        elif any(r is not None for r in recorded):
            print(f'[{step.stage}] {step.label}: outputs missing, redoing')
        for s in steps:
            dump_json({'fingerprint': s.fingerprint, 'argv': list(s.argv)},
                      self._record_path(s, 'started'), indent=1)
        log_path = self.log_dir / f'{step.name}.log'
        log_path.parent.mkdir(parents=True, exist_ok=True)
        print(f'[{step.stage}] {step.label}: running (log: {log_path})', flush=True)
        start = time.monotonic()
        # progress lines as they happen; the shell launchers use this interpreter
        env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
        env.setdefault('PYTHON', sys.executable)
        with open(log_path, 'w', encoding='utf-8', buffering=1) as log:
            proc = subprocess.Popen([*step.argv, *map(str, extra_argv)], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, bufsize=1, env=env,
                                    cwd=REPO_ROOT)
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                if PROGRESS_LINE.search(line):
                    print(f'    [{step.stage} {step.label}] {_short(line)}', flush=True)
            code = proc.wait()
        elapsed = time.monotonic() - start
        with self._lock:
            self.timings[step.stage] += elapsed
        if code != 0:
            tail = ''.join(log_path.read_text(encoding='utf-8').splitlines(True)[-15:])
            raise StageFailed(f'{step.stage} {step.label} failed (exit {code}); see '
                              f'{log_path}:\n{tail}')
        missing = [p for s in steps for p in s.outputs if not p.exists()]
        if missing:
            raise StageFailed(f'{step.stage} {step.label} exited 0 but did not write '
                              f'{missing[0]}; see {log_path}')
        for s in steps:
            dump_json({'fingerprint': s.fingerprint, 'argv': list(s.argv),
                       'seconds': round(elapsed, 1)}, self._record_path(s, 'done'), indent=1)
            self._record_path(s, 'started').unlink(missing_ok=True)
        print(f'[{step.stage}] {step.label}: finished in {elapsed:.0f} s', flush=True)
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


def _portable(path: Path) -> str:
    """A path as the fingerprint holds it: the project's own files relative to the
    repository, so that a moved checkout keeps its records."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def python_tool(script: str, *args: object) -> list[object]:
    """The argv that runs one of the project's Python tools with this interpreter."""
    return [sys.executable, script, *args]


def _short(line: str) -> str:
    """MMEngine log lines without their timestamp prefix, shortened for the console."""
    line = re.sub(r'^\d+/\d+ \d+:\d+:\d+ - mmengine - \w+ - ', '', line.strip())
    return line if len(line) < 160 else line[:157] + '...'
