"""The pipeline's step runner: a step is skipped only when its record holds today's
fingerprint (command, input files, steps before it) and its outputs exist."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from custom_modules.pipeline.runner import StageFailed, StageRunner, step


def _writer(out: Path, text: str, after=(), inputs=()) -> object:
    """A step whose command writes ``text`` into ``out``."""
    code = f'import pathlib; pathlib.Path({str(out)!r}).write_text({text!r})'
    return step('write', out.name, [sys.executable, '-c', code], outputs=[out], inputs=inputs,
                after=after)


def test_a_step_is_redone_when_its_command_input_or_earlier_step_changes(tmp_path):
    runner = StageRunner(tmp_path / 'work')
    source, first_out, second_out = tmp_path / 'source', tmp_path / 'a', tmp_path / 'b'
    source.write_text('v1')
    first = _writer(first_out, 'one', inputs=[source])
    second = _writer(second_out, 'two', after=[first])
    assert runner.run(first) and runner.run(second)
    assert first_out.read_text() == 'one' and second_out.read_text() == 'two'
    # same command, inputs and outputs: skipped (even by a new runner, from its records)
    runner = StageRunner(tmp_path / 'work')
    assert not runner.run(_writer(first_out, 'one', inputs=[source]))
    # another argument: redone, and the step after it too (its fingerprint holds first's)
    changed = _writer(first_out, 'ONE', inputs=[source])
    assert runner.run(changed) and first_out.read_text() == 'ONE'
    assert not runner.is_done(_writer(second_out, 'two', after=[changed]))
    # an input file's bytes changed (as a new run sees it: steps are made per run)
    source.write_text('v2')
    changed = _writer(first_out, 'ONE', inputs=[source])
    assert not runner.is_done(changed)
    assert runner.run(changed)
    # an output removed
    first_out.unlink()
    assert not runner.is_done(changed) and runner.run(changed) and first_out.is_file()


def test_steps_done_by_one_command_are_recorded_together(tmp_path):
    runner = StageRunner(tmp_path / 'work')
    both, other = tmp_path / 'both', tmp_path / 'other'
    code = (f'import pathlib; pathlib.Path({str(both)!r}).write_text("x"); '
            f'pathlib.Path({str(other)!r}).write_text("y")')
    main = step('train', 'main', [sys.executable, '-c', code], outputs=[both])
    extra = _writer(other, 'y')
    assert runner.run(main, also_done=[extra])
    assert runner.is_done(main) and runner.is_done(extra)
    assert not runner.run(extra)


def test_a_failed_step_names_its_log_and_is_not_recorded_done(tmp_path):
    runner = StageRunner(tmp_path / 'work')
    out = tmp_path / 'never'
    failing = step('train', 'broken', [sys.executable, '-c', 'raise SystemExit("boom")'],
                   outputs=[out])
    with pytest.raises(StageFailed, match=r'train broken failed \(exit 1\); see .*train_broken'
                       r'\.log:\nboom'):
        runner.run(failing)
    assert runner.was_started(failing) and not runner.is_done(failing)
    silent = step('train', 'silent', [sys.executable, '-c', 'pass'], outputs=[out])
    with pytest.raises(StageFailed, match=f'exited 0 but did not write {out}'):
        runner.run(silent)
