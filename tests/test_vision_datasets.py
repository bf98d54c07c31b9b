"""Training data read from the data root as it is, and classes matched to category ids by
name.

``train_val`` is a ``ConcatDataset`` of train and val and the semantic masks are made as
samples load: both must give exactly the samples (images, boxes, masks, labels, order) of
the way training read them before, a merged ``train_val/`` folder and PNG masks (which the
export tools still write), so that a seeded run trains the same model.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from coco_builders import build_root, load_ann, restart_ids
from mmcv.transforms import Compose
from mmdet.registry import DATASETS as DET_DATASETS
from mmdet.registry import METRICS as DET_METRICS
from mmdet.registry import TRANSFORMS as DET_TRANSFORMS
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmengine.config import ConfigDict
from mmengine.dataset import RepeatDataset
from mmengine.registry import DefaultScope, init_default_scope
from mmseg.registry import DATASETS as SEG_DATASETS
from mmseg.registry import TRANSFORMS as SEG_TRANSFORMS
from pycocotools import mask as mask_utils

from custom_modules.engine import load_config
from custom_modules.formats import FormatError
from custom_modules.vision.merge import export_train_val
from custom_modules.vision.semantic_masks import export_semantic_masks

from tool_helpers import config_path, load_tool

ANN = '_annotations.coco.json'
# Sample fields that name where a sample came from, not what it is.
PROVENANCE = ('img_id', 'img_path', 'sample_idx')


@pytest.fixture(scope='module')
def root(tmp_path_factory) -> Path:
    """Widget (sparse category ids, an unlabelled train image, val names that clash with
    train's) with ids restarting at 0 in train and val."""
    root = build_root(tmp_path_factory.mktemp('datasets') / 'data', ('Widget', ))
    for split in ('train', 'val'):
        path = root / 'Widget' / split / ANN
        coco = json.loads(path.read_text())
        restart_ids(coco)
        path.write_text(json.dumps(coco))
    return root


def _seeded(seed: int, fetch):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return fetch()


def _without_provenance(info: dict) -> dict:
    return {k: v for k, v in info.items() if k not in PROVENANCE}


def test_train_val_reads_the_samples_of_the_merged_split(root, tmp_path):
    cfg = load_config(config_path('cascade_r50_tiny'), None, str(root), 'Widget',
                      train_split='train_val')
    train_cfg = cfg.train_dataloader.dataset
    assert train_cfg.type == 'RepeatDataset' and train_cfg.dataset.type == 'ConcatDataset'
    assert [d.ann_file for d in train_cfg.dataset.datasets] == [
        f'Widget/{split}/{ANN}' for split in ('train', 'val')]
    # before: CocoDataset on the merged folder, inside the same wrapper
    merged = tmp_path / 'merged'
    export_train_val(root, 'Widget', merged)
    old_inner = ConfigDict(train_cfg.dataset.datasets[0].to_dict(), type='CocoDataset',
                           data_root=str(merged), ann_file=f'Widget/train_val/{ANN}',
                           data_prefix=dict(img='Widget/train_val/'))
    init_default_scope('mmdet')
    new = DET_DATASETS.build(train_cfg)
    old = DET_DATASETS.build(ConfigDict(train_cfg.to_dict(), dataset=old_inner))
    assert len(new) == len(old)
    size = len(new.dataset)
    assert size == 4  # 3 + 2 images, less the unlabelled one (filter_empty_gt)
    for idx in range(size):
        new_info, old_info = new.get_data_info(idx), old.get_data_info(idx)
        assert _without_provenance(new_info) == _without_provenance(old_info)
        assert Path(new_info['img_path']).read_bytes() == Path(old_info['img_path']).read_bytes()
        # through the random training pipeline, seeded alike
        a, b = _seeded(idx, lambda: new[idx]), _seeded(idx, lambda: old[idx])
        assert torch.equal(a['inputs'], b['inputs'])
        ga, gb = a['data_samples'].gt_instances, b['data_samples'].gt_instances
        assert torch.equal(ga.bboxes.tensor, gb.bboxes.tensor)
        assert torch.equal(ga.labels, gb.labels) and len(ga) > 0
        np.testing.assert_array_equal(ga.masks.to_ndarray(), gb.masks.to_ndarray())


def test_semantic_masks_made_on_load_equal_the_png_path(root, tmp_path):
    cfg = load_config(config_path('mask2former_swinl_tiny'), None, str(root), 'Widget',
                      train_split='train_val')
    init_default_scope('mmseg')
    new = SEG_DATASETS.build(cfg.train_dataloader.dataset)
    while isinstance(new, RepeatDataset):  # the training set's repeats (the schedule's)
        new = new.dataset
    # before: the merged folder's images with PNG masks, read by MMSegmentation
    merged = export_train_val(root, 'Widget', tmp_path / 'merged')
    pngs = export_semantic_masks(root, 'Widget', 'train_val', tmp_path / 'masks')
    old_pipeline = Compose([
        dict(type='LoadAnnotations', reduce_zero_label=False) if t['type'] == 'LoadDefectMask'
        else t for t in cfg.train_pipeline])
    load_png = SEG_TRANSFORMS.build(dict(type='LoadAnnotations', reduce_zero_label=False))
    load_new = SEG_TRANSFORMS.build(dict(type='LoadDefectMask'))
    images = json.loads((merged / ANN).read_text())['images']
    assert len(new) == len(images) == 5
    empty_seen = False
    for idx, img in enumerate(images):
        def old_info() -> dict:  # a fresh sample dict, as a dataset gives
            return dict(img_path=str(merged / img['file_name']), reduce_zero_label=False,
                        seg_map_path=str(pngs / f'{Path(img["file_name"]).stem}.png'),
                        label_map=None, seg_fields=[])
        assert (Path(new.get_data_info(idx)['img_path']).read_bytes()
                == Path(old_info()['img_path']).read_bytes())
        made = load_new(new.get_data_info(idx))['gt_seg_map']
        read = load_png(old_info())['gt_seg_map']
        assert made.dtype == read.dtype == np.uint8 and made.flags.c_contiguous
        np.testing.assert_array_equal(made, read)
        empty_seen |= not made.any()
        a = _seeded(idx, lambda: new[idx])
        b = _seeded(idx, lambda: old_pipeline(old_info()))
        assert torch.equal(a['inputs'], b['inputs'])
        assert torch.equal(a['data_samples'].gt_sem_seg.data, b['data_samples'].gt_sem_seg.data)
    assert empty_seen  # the unlabelled train image: all background, as its PNG


def test_unlabelled_split_loads_without_masks_in_test_mode_only(root):
    init_default_scope('mmseg')
    common = dict(type='VisionSemanticDataset', data_root=str(root),
                  ann_file=f'Widget/inference/{ANN}', data_prefix=dict(img_path='Widget/inference'),
                  pipeline=[])
    infos = SEG_DATASETS.build(dict(common, test_mode=True))
    assert all('defect_rle' not in infos.get_data_info(i) for i in range(len(infos)))
    with pytest.raises(FormatError, match=rf'Widget/inference/{ANN}: no annotations to train on'):
        SEG_DATASETS.build(common)


def _reorder_categories(root: Path, split: str, order: list[int]) -> dict[int, str]:
    """Rewrite a split's ``categories`` list in the given order of ids; return id -> name."""
    path = root / 'Widget' / split / ANN
    coco = json.loads(path.read_text())
    by_id = {c['id']: c for c in coco['categories']}
    coco['categories'] = [by_id[i] for i in order]
    path.write_text(json.dumps(coco))
    return {i: c['name'] for i, c in by_id.items()}


@pytest.fixture
def reordered(tmp_path) -> Path:
    """Widget whose train file lists its categories (3 dent, 5 scratch, 7 spot) as 7, 3, 5
    and whose inference_gt file lists them as 5, 7, 3."""
    root = build_root(tmp_path / 'data', ('Widget', ))
    _reorder_categories(root, 'train', [7, 3, 5])
    _reorder_categories(root, 'inference_gt', [5, 7, 3])
    return root


def test_training_labels_follow_the_class_names(reordered):
    cfg = load_config(config_path('cascade_r50_tiny'), None, str(reordered), 'Widget')
    classes = cfg.train_dataloader.dataset.dataset.metainfo.classes
    assert classes == ('dent', 'scratch', 'spot')  # by id
    coco = load_ann(reordered, 'Widget', 'train')
    names = {c['id']: c['name'] for c in coco['categories']}
    init_default_scope('mmdet')
    labels = {}
    for kind in ('VisionCocoDataset', 'CocoDataset'):
        dataset = DET_DATASETS.build(ConfigDict(cfg.train_dataloader.dataset.dataset.to_dict(),
                                                type=kind, pipeline=[]))
        labels[kind] = [(inst['bbox'], classes[inst['bbox_label']])
                        for i in range(len(dataset))
                        for inst in dataset.get_data_info(i)['instances']]
    expected = []
    for img in coco['images']:
        for ann in coco['annotations']:
            if ann['image_id'] == img['id']:
                x, y, w, h = ann['bbox']
                expected.append(([x, y, x + w, y + h], names[ann['category_id']]))
    assert labels['VisionCocoDataset'] == expected
    assert labels['CocoDataset'] != expected  # MMDetection's own takes the file order


def test_results_get_each_files_category_ids_by_name(reordered, tmp_path):
    """Labels in the model's class order are written (and scored) as the categories of the
    same names in an inference json that orders its categories differently."""
    classes = ('dent', 'scratch', 'spot')
    gt_file = reordered / 'Widget' / 'inference_gt' / ANN
    gt = json.loads(gt_file.read_text())
    ids = {c['name']: c['id'] for c in gt['categories']}
    init_default_scope('mmdet')
    results = {}
    for kind in ('VisionCocoMetric', 'CocoMetric'):
        metric = DET_METRICS.build(dict(type=kind, ann_file=str(gt_file), metric=['bbox', 'segm'],
                                        format_only=True, outfile_prefix=str(tmp_path / kind)))
        metric.dataset_meta = dict(classes=classes)
        samples = []
        for img in gt['images']:
            masks = torch.zeros((3, img['height'], img['width']), dtype=torch.bool)
            for label in range(3):
                masks[label, 2 * label:2 * label + 4, 3:9] = True
            samples.append(dict(img_id=img['id'], ori_shape=(img['height'], img['width']),
                                pred_instances=dict(
                                    bboxes=torch.tensor([[3., 2. * k, 9., 2. * k + 4]
                                                         for k in range(3)]),
                                    scores=torch.tensor([0.9, 0.8, 0.7]),
                                    labels=torch.tensor([0, 1, 2]), masks=masks)))
        metric.process({}, samples)
        metric.evaluate(len(samples))
        results[kind] = json.loads((tmp_path / f'{kind}.segm.json').read_text())
    written = [(d['image_id'], d['category_id']) for d in results['VisionCocoMetric']]
    assert written == [(img['id'], ids[name]) for img in gt['images'] for name in classes]
    for det in results['VisionCocoMetric']:  # each label's own mask went with it
        label = classes.index(next(n for n, i in ids.items() if i == det['category_id']))
        rle = dict(det['segmentation'], counts=det['segmentation']['counts'].encode())
        assert mask_utils.toBbox(rle).tolist() == [3, 2 * label, 6, 4]
    assert [d['category_id'] for d in results['CocoMetric']] != [c for _, c in written]


def test_a_class_missing_from_a_file_is_a_one_line_error(reordered, tmp_path):
    gt_file = reordered / 'Widget' / 'inference_gt' / ANN
    init_default_scope('mmdet')
    metric = DET_METRICS.build(dict(type='VisionCocoMetric', ann_file=str(gt_file),
                                    format_only=True, outfile_prefix=str(tmp_path / 'r')))
    metric.dataset_meta = dict(classes=('dent', 'crack'))
    metric.results.append(({}, {}))
    with pytest.raises(FormatError, match=rf"^{gt_file}: no category named 'crack'"):
        metric.evaluate(1)


def _pseudo_labels(root: Path, out: Path) -> tuple[Path, np.ndarray, str]:
    """One pseudo label (an RLE mask) on Widget's first inference image, in a file that
    lists the categories in reverse; returns the file, the mask and its class name."""
    inference = load_ann(root, 'Widget', 'inference')
    image = inference['images'][0]
    mask = np.zeros((image['height'], image['width']), dtype=np.uint8)
    mask[3:11, 5:17] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    category = inference['categories'][-1]
    coco = dict(images=[image], categories=inference['categories'][::-1], annotations=[dict(
        id=1, image_id=image['id'], category_id=category['id'], iscrowd=0,
        area=float(mask.sum()), bbox=[float(v) for v in mask_utils.toBbox(rle)],
        segmentation=dict(size=rle['size'], counts=rle['counts'].decode()))])
    out.write_text(json.dumps(coco))
    return out, mask, category['name']


def test_pseudo_labels_are_read_after_the_labelled_split(root, tmp_path):
    pseudo, mask, name = _pseudo_labels(root, tmp_path / 'pseudo.json')
    cfg = load_config(config_path('cascade_r50_tiny'), None, str(root), 'Widget',
                      train_split='train', pseudo_labels=pseudo)
    parts = cfg.train_dataloader.dataset.dataset
    assert parts.type == 'ConcatDataset'
    assert [d.ann_file for d in parts.datasets] == [f'Widget/train/{ANN}', str(pseudo)]
    init_default_scope('mmdet')
    dataset = DET_DATASETS.build(parts)
    train = load_ann(root, 'Widget', 'train')
    assert len(dataset) == len(train['images']) - 1 + 1  # less the unlabelled train image
    info = dataset.get_data_info(len(dataset) - 1)
    assert Path(info['img_path']) == root / 'Widget' / 'inference' / \
        load_ann(root, 'Widget', 'inference')['images'][0]['file_name']
    (instance, ) = info['instances']
    assert cfg.train_dataloader.dataset.dataset.datasets[0].metainfo['classes'][
        instance['bbox_label']] == name  # the class by name, whatever the file's order
    loaded = Compose([dict(type='LoadImageFromFile'), dict(type='LoadAnnotations',
                                                           with_bbox=True, with_mask=True)])
    np.testing.assert_array_equal(loaded(info)['gt_masks'].masks[0], mask)
    # the semantic model reads them as one more defect mask
    cfg = load_config(config_path('mask2former_swinl_tiny'), None, str(root), 'Widget',
                      train_split='train', pseudo_labels=pseudo)
    with DefaultScope.overwrite_default_scope('mmseg'):
        semantic = SEG_DATASETS.build(cfg.train_dataloader.dataset.dataset)
        load_mask = SEG_TRANSFORMS.build(dict(type='LoadDefectMask'))
    last = semantic.get_data_info(len(semantic) - 1)
    np.testing.assert_array_equal(load_mask(dict(last))['gt_seg_map'], mask)
    with pytest.raises(FormatError, match='missing pseudo-label annotation file'):
        load_config(config_path('cascade_r50_tiny'), None, str(root), 'Widget',
                    pseudo_labels=tmp_path / 'absent.json')


def _resized_and_cropped(info: dict, load: str, seed: int) -> dict:
    """A training sample through loading, a x8 resize, a crop and the sliver filter."""
    return _seeded(seed, lambda: Compose([
        dict(type='LoadImageFromFile'), dict(type=load, with_bbox=True, with_mask=True),
        dict(type='Resize', scale=(448, 448), keep_ratio=True),
        dict(type='RandomCrop', crop_type='absolute', crop_size=(160, 160),
             allow_negative_crop=True, recompute_bbox=True),
        dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2), by_mask=True),
    ])(dict(info)))


def test_polygon_masks_resize_and_crop_as_the_bitmaps_do(root):
    cfg = load_config(config_path('cascade_r50_tiny'), None, str(root), 'Widget',
                      train_split='train')  # imports the transforms
    assert cfg.train_dataloader.dataset.dataset.pipeline[1]['type'] == 'LoadPolygonAnnotations'
    init_default_scope('mmdet')
    dataset = DET_DATASETS.build(dict(cfg.train_dataloader.dataset.dataset, pipeline=[]))
    kinds = set()
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        for seed in range(3):
            bitmap = _resized_and_cropped(info, 'LoadAnnotations', seed)
            mixed = _resized_and_cropped(info, 'LoadPolygonAnnotations', seed)
            np.testing.assert_array_equal(mixed['img'], bitmap['img'])
            masks = mixed['gt_masks']
            kinds.add(type(masks).__name__)
            if all(isinstance(i['mask'], list) for i in info['instances']):
                assert isinstance(masks, PolygonMasks)
                # rasterised at the crop, against nearest-neighbour bitmaps grown x8
                assert len(masks) == len(bitmap['gt_masks'])
                for poly, pixels in zip(masks.to_ndarray(), bitmap['gt_masks'].masks):
                    iou = (poly & pixels).sum() / max((poly | pixels).sum(), 1)
                    assert iou > 0.75, (info['img_path'], seed, iou)
                np.testing.assert_allclose(mixed['gt_bboxes'].numpy(),
                                           bitmap['gt_bboxes'].numpy(), atol=8)
            else:  # an RLE mask: every mask of the image as bitmaps, exactly as before
                assert isinstance(masks, BitmapMasks)
                np.testing.assert_array_equal(masks.masks, bitmap['gt_masks'].masks)
                np.testing.assert_array_equal(mixed['gt_bboxes'].numpy(),
                                              bitmap['gt_bboxes'].numpy())
    assert kinds == {'PolygonMasks', 'BitmapMasks'}  # the root holds both kinds of image
    rasterise = DET_TRANSFORMS.build(dict(type='PolygonsToBitmaps'))
    polygons = _resized_and_cropped(dataset.get_data_info(0), 'LoadPolygonAnnotations', 0)
    expected = polygons['gt_masks'].to_ndarray()
    np.testing.assert_array_equal(rasterise(polygons)['gt_masks'].masks, expected)


def test_data_benchmark_times_both_loaders(root, capsys):
    load_tool('analysis_tools/benchmark_data').main([
        config_path('cascade_r50_tiny'), '--data-root', str(root), '--dataset', 'Widget',
        '--images', '2', '--repeat', '1'])
    lines = [line for line in capsys.readouterr().out.splitlines() if ' s per sample ' in line]
    assert [line.split(':')[0] for line in lines] == [
        'Widget train LoadPolygonAnnotations', 'Widget train LoadAnnotations']
    assert all('(2 images, ' in line for line in lines)


def test_copy_paste_wraps_the_training_data_and_pastes_another_crops_objects(root,
                                                                             monkeypatch):
    from custom_modules.datasets.copy_paste import VisionCopyPaste, use_copy_paste

    cfg = load_config(config_path('cascade_r50_tiny'), None, str(root), 'Widget',
                      train_split='train_val')
    use_copy_paste(cfg)
    mixed = cfg.train_dataloader.dataset.dataset  # inside the schedule's RepeatDataset
    assert mixed.type == 'MultiImageMixDataset' and mixed.dataset.type == 'ConcatDataset'
    assert [t['type'] for t in mixed.pipeline] == ['VisionCopyPaste', 'FilterAnnotations',
                                                   'RandomFlip', 'PackDetInputs']
    for part in mixed.dataset.datasets:
        assert [t['type'] for t in part.pipeline][-4:] == ['RandomCrop', 'FilterAnnotations',
                                                           'Pad', 'PolygonsToBitmaps']
    assert 'custom_modules.datasets.copy_paste' in cfg.custom_imports.imports
    init_default_scope('mmdet')
    dataset = DET_DATASETS.build(mixed)
    # the source index stays inside the dataset (MMDetection's may fall one past its end)
    draws = {VisionCopyPaste().get_indexes(dataset.dataset) for _ in range(200)}
    assert draws == set(range(len(dataset.dataset)))
    # the paste alone, every object of sample 2 onto sample 0: against the two crops
    # drawn with the same seed and pasted by hand
    dataset.pipeline, dataset.pipeline_types = dataset.pipeline[:1], dataset.pipeline_types[:1]
    paste = dataset.pipeline[0]
    monkeypatch.setattr(paste, 'get_indexes', lambda data: 2)
    paste.selected = False  # every object of the source
    pasted = _seeded(5, lambda: dataset[0])
    dst, src = _seeded(5, lambda: (dataset.dataset[0], dataset.dataset[2]))
    crop = tuple(mixed.dataset.datasets[0].pipeline[-4]['crop_size'])
    assert dst['img'].shape[:2] == src['img'].shape[:2] == crop  # both padded to the crop
    covered = src['gt_masks'].masks.any(axis=0)
    expected = np.where(covered[..., None], src['img'], dst['img'])
    np.testing.assert_array_equal(pasted['img'], expected)
    kept = [m & ~covered for m in dst['gt_masks'].masks]
    n_src = len(src['gt_masks'])
    np.testing.assert_array_equal(pasted['gt_masks'].masks[-n_src:], src['gt_masks'].masks)
    assert len(pasted['gt_masks']) <= len(kept) + n_src
    for mask in pasted['gt_masks'].masks[:-n_src]:  # the survivors, less what was covered
        assert not (mask & covered).any()
    assert list(pasted['gt_bboxes_labels'][-n_src:]) == list(src['gt_bboxes_labels'])


def test_training_with_copy_paste_runs_and_is_for_instance_models_only(root, tmp_path):
    train = load_tool('train')
    work_dir = tmp_path / 'run'
    train.main([config_path('cascade_r50_tiny'), '--data-root', str(root), '--dataset',
                'Widget', '--work-dir', str(work_dir), '--max-iters', '2', '--no-validate',
                '--copy-paste'])
    assert (work_dir / 'last_checkpoint').is_file()
    dumped = (work_dir / 'cascade_r50_tiny.py').read_text()
    assert "type='VisionCopyPaste'" in dumped and "type='MultiImageMixDataset'" in dumped
    with pytest.raises(SystemExit, match='--copy-paste is for the instance models'):
        train.main([config_path('mask2former_swinl_tiny'), '--data-root', str(root),
                    '--dataset', 'Widget', '--work-dir', str(tmp_path / 'sem'),
                    '--max-iters', '2', '--copy-paste'])
