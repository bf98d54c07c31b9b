"""Convert a CBNetV2 (MMDetection 2.x) dual-Swin checkpoint to this project's layout.

    python tools/model_converters/cbnetv2_to_mmdet3.py SRC DST

E.g. CBNetV2's COCO-trained HTC DB-Swin-B, which the authors started from.
``tools/prepare_weights.py`` applies the same conversion, leaves out the class-dependent
heads and checks the result against the model the config builds: prefer it for
training. Only convert checkpoints you trust: MMDetection 2 pickles their metadata.
"""
from __future__ import annotations

import argparse
import sys

from custom_modules.formats import FormatError
from custom_modules.models.checkpoint_conversion import cbnetv2_to_mmdet3, convert_checkpoint


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='CBNetV2 checkpoint (.pth)')
    parser.add_argument('dst', help='converted checkpoint to write')
    args = parser.parse_args(argv)
    try:
        weights = convert_checkpoint(args.src, args.dst, cbnetv2_to_mmdet3)
    except FormatError as err:
        sys.exit(f'error: {err}')
    print(f'wrote {len(weights)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
