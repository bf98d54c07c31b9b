"""Convert an official Swin checkpoint (e.g. ImageNet-22k Swin-B) into both branches of
CBSwinTransformer.

    python tools/model_converters/swin_to_cbswin.py SRC DST

Use DST as the backbone's ``init_cfg=dict(type='Pretrained', checkpoint=DST)``.
"""
from __future__ import annotations

import argparse
import sys

from custom_modules.formats import FormatError
from custom_modules.models.checkpoint_conversion import convert_checkpoint, swin_to_cbswin


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official Swin checkpoint (.pth, weights under "model")')
    parser.add_argument('dst', help='converted checkpoint to write')
    args = parser.parse_args(argv)
    try:
        weights = convert_checkpoint(args.src, args.dst, swin_to_cbswin)
    except FormatError as err:
        sys.exit(f'error: {err}')
    print(f'wrote {len(weights)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
