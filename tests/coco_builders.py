"""Small hand-made VISION-layout data roots for the converter and evaluation tests.

Boxes and areas of the written annotations come from pycocotools, as a correct exporter
would write them; tests then plant problems or compare outputs against pycocotools.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

REPO = Path(__file__).resolve().parents[1]

CATEGORIES = {
    'Cable': [(1, 'break'), (2, 'thunderbolt')],
    'Widget': [(3, 'dent'), (5, 'scratch'), (7, 'spot')],  # a user's dataset, sparse ids
}
# split -> [(file name, width, height)]; file names chosen so that merging must rename.
SPLIT_IMAGES = {
    'train': [('img_0.jpg', 48, 36), ('img_1.jpg', 40, 40), ('val_img_0.jpg', 56, 32)],
    'val': [('img_0.jpg', 48, 36), ('img_1.png', 44, 30)],
    'inference': [('test_0.jpg', 48, 40), ('test_1.png', 36, 36)],
}


def rectangle(x: float, y: float, w: float, h: float) -> list[float]:
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def annotation(ann_id: int, image_id: int, category_id: int, segmentation, height: int,
               width: int) -> dict:
    """A COCO annotation whose bbox and area are pycocotools' for its mask."""
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    else:
        rle = dict(segmentation, counts=segmentation['counts'].encode('ascii'))
    return dict(id=ann_id, image_id=image_id, category_id=category_id,
                segmentation=segmentation, bbox=[float(v) for v in mask_utils.toBbox(rle)],
                area=float(mask_utils.area(rle)), iscrowd=0)


def rle_of(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {'size': [int(v) for v in rle['size']], 'counts': rle['counts'].decode('ascii')}


def random_segmentation(rng: np.random.RandomState, height: int, width: int):
    """A rectangle, a triangle or (as RLE) an ellipse inside the image."""
    kind = rng.randint(3)
    w, h = rng.randint(6, width // 2), rng.randint(6, height // 2)
    x, y = rng.randint(0, width - w), rng.randint(0, height - h)
    if kind == 0:
        return [rectangle(float(x), float(y), float(w), float(h))]
    if kind == 1:
        return [[float(x), float(y), float(x + w), float(y + h / 2), float(x), float(y + h)]]
    yy, xx = np.mgrid[:height, :width]
    ellipse = ((xx - x - w / 2) / (w / 2)) ** 2 + ((yy - y - h / 2) / (h / 2)) ** 2 <= 1
    return rle_of(ellipse)


def labelled_coco(images: list[tuple[str, int, int]], categories: list[tuple[int, str]],
                  seed: int, unlabelled: tuple[int, ...] = ()) -> dict:
    """COCO dict with 1-3 random annotations per image (none on ``unlabelled`` indices)."""
    rng = np.random.RandomState(seed)
    coco = coco_dict(images, categories)
    for index, img in enumerate(coco['images']):
        if index in unlabelled:
            continue
        for _ in range(rng.randint(1, 4)):
            category = categories[rng.randint(len(categories))][0]
            coco['annotations'].append(annotation(
                len(coco['annotations']) + 1, img['id'], category,
                random_segmentation(rng, img['height'], img['width']), img['height'],
                img['width']))
    return coco


def coco_dict(images: list[tuple[str, int, int]], categories: list[tuple[int, str]],
              first_id: int = 1) -> dict:
    return {
        'images': [dict(id=first_id + i, file_name=name, width=w, height=h)
                   for i, (name, w, h) in enumerate(images)],
        'categories': [dict(id=cid, name=name, supercategory='defect') for cid, name in categories],
        'annotations': [],
    }


def restart_ids(coco: dict) -> None:
    """Number images and annotations from 0, as Roboflow does in every split."""
    new_id = {img['id']: k for k, img in enumerate(coco['images'])}
    for img in coco['images']:
        img['id'] = new_id[img['id']]
    for k, ann in enumerate(coco['annotations']):
        ann['id'], ann['image_id'] = k, new_id[ann['image_id']]


def write_image(path: Path, width: int, height: int, seed: int) -> None:
    """Random pixels, so every image file's content is unique."""
    pixels = np.random.RandomState(seed).randint(0, 256, (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def write_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def build_root(root: Path, datasets=tuple(CATEGORIES)) -> Path:
    """train / val / inference / inference_gt of each dataset; Widget's second train image
    has no annotation."""
    for d_index, dataset in enumerate(datasets):
        categories = CATEGORIES[dataset]
        for s_index, (split, images) in enumerate(SPLIT_IMAGES.items()):
            seed = 100 * d_index + 10 * s_index
            unlabelled = (1, ) if (dataset, split) == ('Widget', 'train') else ()
            coco = labelled_coco(images, categories, seed, unlabelled)
            if split == 'inference':
                write_json(coco, root / dataset / 'inference_gt' / '_annotations.coco.json')
                coco = dict(coco, annotations=[])
            write_json(coco, root / dataset / split / '_annotations.coco.json')
            for i, img in enumerate(coco['images']):
                write_image(root / dataset / split / img['file_name'], img['width'],
                            img['height'], seed + i)
    return root


def load_ann(root: Path, dataset: str, split: str) -> dict:
    return json.loads((root / dataset / split / '_annotations.coco.json').read_text())


def pycocotools_stats(ann_file: Path, pred_file: Path, iou_type: str = 'segm') -> np.ndarray:
    """The reference: COCOeval on the files exactly as pycocotools' own example does."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        evaluator = COCOeval(gt, gt.loadRes(str(pred_file)), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def run_tool(script: str, *args) -> subprocess.CompletedProcess:
    """Run ``tools/<script>`` in a new process, as a user would (slow: it imports the whole
    package; most CLI tests call :func:`call_tool` instead)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO), os.environ.get('PYTHONPATH')])))
    return subprocess.run([sys.executable, str(REPO / 'tools' / script), *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, env=env)


def call_tool(script: str, *args) -> int:
    """Run ``tools/<script>``'s ``main`` in this process; return its exit status."""
    spec = importlib.util.spec_from_file_location(f'tool_{Path(script).stem}',
                                                  REPO / 'tools' / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        module.main([str(a) for a in args])
    except SystemExit as exit_:
        if isinstance(exit_.code, str):  # sys.exit('error: ...') prints to stderr
            print(exit_.code, file=sys.stderr)
            return 1
        return exit_.code or 0
    return 0
