"""The synthetic VISION-layout generator: layout, determinism, annotation consistency,
and that the annotated region is exactly what was painted."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from coco_builders import REPO
from PIL import Image
from pycocotools import mask as mask_utils

from custom_modules.synthetic import PRESETS, THEMES, generate, paint_defects

ANN = '_annotations.coco.json'
LABELLED = ('train', 'val', 'inference_gt')


@pytest.fixture(scope='module')
def smoke_root(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp('synthetic')
    return root, generate(root, seed=0, preset='smoke', progress=False)


def _load(root: Path, dataset: str, split: str) -> dict:
    return json.loads((root / dataset / split / ANN).read_text())


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*'))
            if p.is_file()}


def test_layout_and_images(smoke_root):
    root, names = smoke_root
    preset = PRESETS['smoke']
    assert names == [t.name for t in THEMES[:preset.num_datasets]]
    assert sorted(p.name for p in root.iterdir()) == sorted(names)
    for dataset in names:
        folder = root / dataset
        assert sorted(p.name for p in folder.iterdir()) == [
            'inference', 'inference_gt', 'train', 'val']
        assert [p.name for p in (folder / 'inference_gt').iterdir()] == [ANN]
        for split, count in zip(('train', 'val', 'inference'), preset.counts):
            data = _load(root, dataset, split)
            assert set(data) >= {'images', 'categories', 'annotations'}
            assert len(data['images']) == count
            ids = [img['id'] for img in data['images']]
            assert len(set(ids)) == len(ids)
            on_disk = {p.name for p in (folder / split).iterdir()} - {ANN}
            assert on_disk == {img['file_name'] for img in data['images']}
            for img in data['images']:
                with Image.open(folder / split / img['file_name']) as im:
                    assert im.format == 'JPEG' and im.mode == 'RGB'
                    assert im.size == (img['width'], img['height'])
                assert preset.long_side[0] <= max(img['width'], img['height']) \
                    <= preset.long_side[1]


def test_annotations_match_polygons(smoke_root):
    root, names = smoke_root
    for dataset in names:
        categories = _load(root, dataset, 'train')['categories']
        assert all(set(c) >= {'id', 'name', 'supercategory'} for c in categories)
        for split in LABELLED:
            data = _load(root, dataset, split)
            assert data['categories'] == categories
            sizes = {img['id']: (img['height'], img['width']) for img in data['images']}
            ann_ids = [a['id'] for a in data['annotations']]
            assert len(set(ann_ids)) == len(ann_ids)
            assert {a['image_id'] for a in data['annotations']} == set(sizes)
            for ann in data['annotations']:
                h, w = sizes[ann['image_id']]
                assert ann['category_id'] in {c['id'] for c in categories}
                assert ann['iscrowd'] == 0 and ann['segmentation']
                for poly in ann['segmentation']:
                    assert len(poly) >= 6 and len(poly) % 2 == 0
                    xs, ys = np.array(poly[0::2]), np.array(poly[1::2])
                    assert xs.min() >= 0 and xs.max() <= w and ys.min() >= 0 and ys.max() <= h
                rles = mask_utils.frPyObjects(ann['segmentation'], h, w)
                merged = mask_utils.merge(rles)
                assert ann['bbox'] == pytest.approx(mask_utils.toBbox(merged).tolist())
                assert ann['area'] == mask_utils.area(merged) == mask_utils.area(rles).sum()
                assert ann['bbox'][2] >= 1 and ann['bbox'][3] >= 1


def test_inference_split_hides_its_ground_truth(smoke_root):
    root, names = smoke_root
    for dataset in names:
        inference = _load(root, dataset, 'inference')
        hidden = _load(root, dataset, 'inference_gt')
        assert inference['annotations'] == []
        assert hidden['images'] == inference['images']
        assert hidden['categories'] == inference['categories']
        assert hidden['annotations']


def test_category_ids_start_at_zero_and_one():
    starts = {t.first_id for t in THEMES[:PRESETS['smoke'].num_datasets]}
    assert starts == {0, 1}
    assert all(1 <= len(t.classes) <= 5 for t in THEMES)
    assert len({t.name for t in THEMES}) == len(THEMES)


def test_smoke_root_category_ids(smoke_root):
    root, names = smoke_root
    first_ids = {min(c['id'] for c in _load(root, d, 'train')['categories']) for d in names}
    assert first_ids == {0, 1}
    for dataset in names:
        ids = sorted(c['id'] for c in _load(root, dataset, 'train')['categories'])
        assert ids == list(range(ids[0], ids[0] + len(ids)))


def test_same_seed_same_bytes_other_seed_differs(smoke_root, tmp_path):
    root, _ = smoke_root
    generate(tmp_path / 'again', seed=0, preset='smoke', num_datasets=1, progress=False)
    generate(tmp_path / 'other', seed=1, preset='smoke', num_datasets=1, progress=False)
    first = THEMES[0].name
    reference = {k: v for k, v in _files(root).items() if k.startswith(first + '/')}
    assert _files(tmp_path / 'again') == reference
    other = _files(tmp_path / 'other')
    assert other.keys() == reference.keys()
    assert all(other[k] != reference[k] for k in reference if k.endswith('.jpg'))
    assert other[f'{first}/train/{ANN}'] != reference[f'{first}/train/{ANN}']


@pytest.mark.parametrize('theme', THEMES, ids=lambda t: t.name)
def test_painted_pixels_are_exactly_the_annotated_ones(theme):
    """Before lighting and noise, the image differs from the clean part only inside the
    annotated masks, and every annotated mask changed some pixels."""
    rng = np.random.default_rng(3)
    scene = theme.scene(160, 224, rng)
    clean = scene.image.copy()
    instances = paint_defects(theme, scene, 0, PRESETS['demo'], rng)
    assert instances and instances[0].category == 0
    masks = [mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(i.polygons, 160, 224)))
             .astype(bool) for i in instances]
    changed = (scene.image != clean).any(axis=2)
    union = np.logical_or.reduce(masks)
    assert not (changed & ~union).any()
    assert all((changed & m).sum() > 0.5 * m.sum() for m in masks)
    assert sum(m.sum() for m in masks) == union.sum()  # instances do not overlap


def _cli():
    """``tools/make_synthetic_vision.py`` loaded in-process (a subprocess would spend
    most of the test importing torch again)."""
    spec = importlib.util.spec_from_file_location('make_synthetic_vision',
                                                  REPO / 'tools' / 'make_synthetic_vision.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_cli_writes_and_rejects(tmp_path, capsys):
    main = _cli()
    main(['--out', str(tmp_path), '--preset', 'smoke', '--num-datasets', '1', '--seed', '5',
          '--quiet'])
    assert THEMES[0].name in capsys.readouterr().out
    assert (tmp_path / THEMES[0].name / 'inference_gt' / ANN).is_file()
    with pytest.raises(SystemExit) as exit_info:
        main(['--out', str(tmp_path / 'bad'), '--num-datasets', str(len(THEMES) + 1),
              '--quiet'])
    assert str(exit_info.value.code).startswith('error: num_datasets')
    assert not (tmp_path / 'bad').exists()


def test_mmdet_coco_dataset_loads_a_split(smoke_root):
    from mmdet.datasets import CocoDataset
    root, names = smoke_root
    for dataset in names:
        split = root / dataset / 'train'
        data = _load(root, dataset, 'train')
        classes = tuple(c['name'] for c in sorted(data['categories'], key=lambda c: c['id']))
        coco = CocoDataset(data_root=str(split), ann_file=ANN, data_prefix=dict(img=''),
                           metainfo=dict(classes=classes), pipeline=[])
        assert len(coco) == len(data['images'])
        first = coco[0]
        image = next(i for i in data['images'] if i['id'] == first['img_id'])
        assert Path(first['img_path']) == split / image['file_name']
        anns = [a for a in data['annotations'] if a['image_id'] == image['id']]
        assert len(first['instances']) == len(anns)
        for inst, ann in zip(first['instances'], anns):
            x, y, w, h = ann['bbox']
            assert inst['bbox'] == pytest.approx([x, y, x + w, y + h])
            assert classes[inst['bbox_label']] == next(
                c['name'] for c in data['categories'] if c['id'] == ann['category_id'])
            assert inst['mask'] == ann['segmentation'] and inst['ignore_flag'] == 0
