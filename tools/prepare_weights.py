"""Convert the downloaded published checkpoints into the weights the full configs load.

    python tools/prepare_weights.py --weights-dir weights [--models htc r50 ...] [--verbose]

For each model of configs/weights.json whose source file (the paper's, or the listed
alternative) is in the weights folder: convert it, compare it with the model its config
builds, print the keys left out of the source and those left randomly initialised in
the model, and write ``<weights-dir>/<prepared>``. Both lists must be exactly those the
manifest states; otherwise nothing is written for that model and the tool exits 1.
``--tiny`` checks against the tiny configs instead (what the tests do). Only convert
checkpoints you trust: MMDetection 2 checkpoints pickle their metadata.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from custom_modules.engine import allow_trusted_checkpoints
from custom_modules.engine.weight_preparation import (PreparedWeights, expand_patterns,
                                                      prepare, write_prepared)
from custom_modules.engine.weights import MANIFEST, WEIGHTS_DIR, load_manifest
from custom_modules.formats import FormatError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--weights-dir', default=WEIGHTS_DIR,
                        help='folder of the downloads and of the prepared files')
    parser.add_argument('--models', nargs='+', help='manifest keys (default: all)')
    parser.add_argument('--manifest', default=str(MANIFEST), help='weights manifest')
    parser.add_argument('--tiny', action='store_true',
                        help='check against the tiny configs (tests)')
    parser.add_argument('--verbose', action='store_true', help='print every key')
    return parser.parse_args(argv)


def _report(title: str, keys: list[str], patterns: tuple[str, ...], verbose: bool) -> None:
    """The keys grouped by the manifest pattern that names them."""
    print(f'  {title} ({len(keys)} keys):')
    for pattern in patterns:
        matched = sorted(expand_patterns([pattern], keys))
        print(f'    {pattern}  ({len(matched)} keys)')
        if verbose:
            for key in matched:
                print(f'      {key}')
    unnamed = sorted(set(keys) - expand_patterns(patterns, keys))
    for key in unnamed:
        print(f'    {key}  (not in the manifest)')


def _print(prepared: PreparedWeights, config: str, verbose: bool) -> None:
    model, source = prepared.model, prepared.source
    print(f'{model.key} ({model.title}): {source.name}\n  from {prepared.source_path}, '
          f'{len(prepared.state_dict)} tensors loaded into {config}')
    _report('left out of the source', prepared.left_out, source.left_out, verbose)
    _report('re-initialised in the model', prepared.reinitialised, source.reinitialised,
            verbose)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    allow_trusted_checkpoints()
    failed = []
    try:
        manifest = load_manifest(args.manifest)
        unknown = sorted(set(args.models or ()) - set(manifest))
        if unknown:
            raise FormatError(f'{args.manifest}: no model {", ".join(unknown)} '
                              f'(known: {", ".join(manifest)})')
        for key in args.models or manifest:
            model = manifest[key]
            config = model.config.replace('.py', '_tiny.py') if args.tiny else model.config
            try:
                prepared = prepare(model, args.weights_dir, config)
            except FormatError as err:
                print(f'{key}: not prepared: {err}')
                failed.append(key)
                continue
            _print(prepared, config, args.verbose)
            if prepared.problems:
                for problem in prepared.problems:
                    print(f'  error: {problem}')
                print(f'  nothing written: {prepared.source_path} is not what '
                      f'{args.manifest} describes, or its converter is wrong')
                failed.append(key)
                continue
            target = Path(args.weights_dir) / model.prepared
            write_prepared(prepared, target)
            print(f'  wrote {target}')
    except FormatError as err:
        sys.exit(f'error: {err}')
    if failed:
        sys.exit(f'error: not prepared: {", ".join(failed)}')


if __name__ == '__main__':
    main()
