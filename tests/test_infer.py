"""The model bag and tools/infer.py: the bag the pipeline writes repeats the pipeline's
final detections (and each model its own) image by image without an annotation file,
copied elsewhere; its settings drive fusion and ensemble as the file-based tools apply
them; a folder of mixed formats, a grey image, a PNG with alpha and an unreadable file;
bad manifests and outputs are one-line errors."""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from custom_modules.formats import (FormatError, SplitInfo, encode_mask, load_instance_results,
                                    load_json, load_semantic_results, save_semantic_results)
from custom_modules.inference import (Bag, BagModel, Fusion, InstanceModel, find_images,
                                      read_bag, write_bag)
from custom_modules.inference.predictor import ModelBag, ModelPredictions, combine
from custom_modules.postprocess import (NMSSettings, ensemble_dirs, fuse_dirs,
                                        weights_from_metrics)
from custom_modules.postprocess.calibration import load_calibration
from custom_modules.postprocess.options import DEFAULTS
from custom_modules.vision import annotation_path

from browser import assert_nothing_broken, headless_chromium, open_page
from tool_helpers import load_tool

INFER = load_tool('infer')
MODELS = ('htc', 'r50', 'convnext')


def _json(value):
    """As read back from a results file."""
    return json.loads(json.dumps(value))


def _infer(capsys, *argv: object) -> tuple[int, str, str]:
    """tools/infer.py in this process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        INFER.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), out, err


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.replace('\r', '\n').splitlines() if line.startswith('error:')]


@pytest.fixture(scope='module')
def copied_bag(pipeline_run, tmp_path_factory) -> Path:
    """The pipeline's bags folder copied elsewhere, as onto another machine."""
    _, work_dir, dataset, _ = pipeline_run
    target = tmp_path_factory.mktemp('elsewhere') / 'bags'
    shutil.copytree(work_dir / 'bags', target)
    return target / f'{dataset}.json'


def test_pipeline_bag_names_the_final_stage(pipeline_run, copied_bag):
    data_root, work_dir, dataset, _ = pipeline_run
    bag = read_bag(copied_bag)
    assert bag.dataset == dataset
    assert [m.name for m in bag.instance_models] == list(MODELS)
    assert all(m.tta for m in bag.instance_models)
    assert bag.weights == weights_from_metrics(
        [work_dir / 'metrics' / f'val_{m}.json' for m in MODELS], [dataset])[dataset]
    assert bag.semantic_model.name == 'mask2former'
    # fused above the TTA score that HTC's calibration sends to tau1
    calibration = load_calibration(work_dir / 'calibration' / 'htc', dataset)
    assert bag.fusion == Fusion('htc', calibration.threshold(DEFAULTS.fusion_thr),
                                DEFAULTS.fusion_rule)
    assert bag.ensemble == asdict(DEFAULTS.nms)  # the pipeline's, as tools/ensemble.py's
    categories = load_json(annotation_path(data_root, dataset, 'inference'))['categories']
    assert list(bag.categories) == [dict(id=c['id'], name=c['name']) for c in categories]
    # paths inside the copy, relative in the manifest; weights without optimizer state
    folder = copied_bag.with_suffix('')
    for model in (*bag.instance_models, bag.semantic_model):
        assert model.config.parent == folder and model.checkpoint.parent == folder
        assert set(torch.load(model.checkpoint, weights_only=False)) == {'meta', 'state_dict'}
    manifest = load_json(copied_bag)
    assert manifest['instance_models'][0]['checkpoint'] == f'{dataset}/htc.pth'


def test_infer_on_new_images_gives_the_pipeline_final_detections(pipeline_run, copied_bag,
                                                                 tmp_path, capsys):
    data_root, work_dir, dataset, _ = pipeline_run
    split = load_json(annotation_path(data_root, dataset, 'inference'))
    chosen = sorted(split['images'], key=lambda img: img['id'])[:2]
    folder = tmp_path / 'line_images'
    folder.mkdir()
    for img in chosen:  # the images alone: no annotation file beside them
        shutil.copy(data_root / dataset / 'inference' / img['file_name'], folder)

    code, out, err = _infer(capsys, copied_bag, folder, '--out', tmp_path / 'out')

    assert code == 0, err
    predictions = load_json(tmp_path / 'out' / 'predictions.json')
    assert [(i['file_name'], i['height'], i['width']) for i in predictions['images']] == [
        (img['file_name'], img['height'], img['width']) for img in chosen]
    assert predictions['failed'] == []
    final = load_instance_results(work_dir / 'preds' / 'inference' / 'ensemble'
                                  / f'{dataset}.segm.json', SplitInfo(annotation_path(
                                      data_root, dataset, 'inference')))
    for ours, img in zip(predictions['images'], chosen):
        got = [dict(d, image_id=img['id']) for d in predictions['results']
               if d['image_id'] == ours['id']]
        expected = [d for d in final if d['image_id'] == img['id']]
        assert expected and got == expected, img['file_name']
    assert 'img/s' in err  # the progress bar's rate (and time left)
    assert (tmp_path / 'out' / 'report' / 'index.html').is_file()
    assert sorted(p.name for p in (tmp_path / 'out' / 'vis').iterdir()) == sorted(
        Path(img['file_name']).with_suffix('.jpg').name for img in chosen)


def _planted_semantic(height: int, width: int) -> dict:
    """A defect mask over the image's middle: fusion then changes the masks of the
    detections whose boxes reach it."""
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[height // 4:3 * height // 4, width // 4:3 * width // 4] = 1
    return encode_mask(mask)


def test_each_model_predicts_as_tools_test_and_the_bag_settings_drive_fusion_and_ensemble(
        pipeline_run, copied_bag, tmp_path):
    data_root, work_dir, dataset, _ = pipeline_run
    info = SplitInfo(annotation_path(data_root, dataset, 'inference'))
    image = min(load_json(info.ann_file)['images'], key=lambda img: img['id'])
    bag = read_bag(copied_bag)
    model_bag = ModelBag(bag)
    loaded = model_bag.load(data_root / dataset / 'inference' / image['file_name'])
    predictions = model_bag.model_predictions(loaded, image['id'])

    preds = work_dir / 'preds' / 'inference'
    for model, detections in zip(MODELS, predictions.instances):
        expected = [d for d in load_instance_results(preds / model / f'{dataset}.segm.json', info)
                    if d['image_id'] == image['id']]
        assert _json(detections) == expected, model  # what tools/test.py --tta wrote
    semantic = load_semantic_results(preds / 'mask2former' / f'{dataset}.sem.json', info)
    assert predictions.semantic == semantic[image['id']]

    # Other settings: fuse every detection into a planted defect region, other weights,
    # class-agnostic cross-model suppression at IoU 0.3 keeping 20; the file-based tools on the pipeline's
    # per-model files with the same settings are the reference.
    planted = {img_id: _planted_semantic(h, w) for img_id, (h, w) in info.image_sizes.items()}
    save_semantic_results(planted, tmp_path / 'sem' / f'{dataset}.sem.json')
    weights = [0.25, 1.0, 0.5]
    ensemble = dict(suppress='cross-model', iou_thr=0.3, max_per_img=20, class_agnostic=True)
    custom = replace(bag, fusion=Fusion('htc', 0.0, 'box'), ensemble=ensemble,
                     instance_models=tuple(replace(m, weight=w)
                                           for m, w in zip(bag.instance_models, weights)))
    got = combine(custom, ModelPredictions(predictions.instances, planted[image['id']]))

    fuse_dirs(preds / 'htc', tmp_path / 'sem', tmp_path / 'fused', [dataset], 0.0, 'box',
              data_root, 'inference')
    ensemble_dirs([tmp_path / 'fused', preds / 'r50', preds / 'convnext'], tmp_path / 'final',
                  data_root, 'inference', weights=weights, datasets=[dataset],
                  nms=NMSSettings(**ensemble))
    expected = [d for d in load_instance_results(tmp_path / 'final' / f'{dataset}.segm.json',
                                                 info) if d['image_id'] == image['id']]
    assert got and _json(got) == expected and len(got) <= 20
    fused = [d for d in load_instance_results(tmp_path / 'fused' / f'{dataset}.segm.json', info)
             if d['image_id'] == image['id']]
    assert sum(a != b for a, b in zip(fused, predictions.instances[0])) > 0  # fusion acted


@pytest.fixture(scope='module')
def single_scale_bag(copied_bag, tmp_path_factory) -> Path:
    """The pipeline's bag without TTA: quick enough for folders of several images."""
    bag = read_bag(copied_bag)
    path = tmp_path_factory.mktemp('single_scale') / f'{bag.dataset}.json'
    write_bag(replace(bag, instance_models=tuple(replace(m, tta=False)
                                                 for m in bag.instance_models)), path)
    return path


def _mixed_folder(pipeline_run, folder: Path) -> dict[str, tuple[int, int]]:
    """Images of several formats and sizes made from one inference image, one broken
    file and one that is not an image; returns name -> (height, width) of the images."""
    data_root, _, dataset, _ = pipeline_run
    first = sorted((data_root / dataset / 'inference').glob('*.jpg'))[0]
    source = Image.open(first).convert('RGB')
    folder.mkdir()
    source.save(folder / 'a_rgb.jpg')
    rgb = source.resize((200, 150))
    rgb.save(folder / 'b_rgb.png')
    alpha = rgb.convert('RGBA')
    alpha.putalpha(Image.fromarray(np.tile(np.arange(200, dtype=np.uint8), (150, 1))))
    alpha.save(folder / 'c_alpha.png')
    grey = source.convert('L').resize((160, 240))
    grey.save(folder / 'd_grey.png')
    grey.convert('RGB').save(folder / 'e_grey_as_rgb.png')
    source.resize((300, 100)).save(folder / 'f.bmp')
    source.resize((128, 128)).save(folder / 'g.tif')
    (folder / 'h_broken.jpg').write_bytes(b'\xff\xd8\xff not really a jpeg')
    (folder / 'notes.txt').write_text('not an image: skipped')
    return {p.name: Image.open(p).size[::-1] for p in sorted(folder.iterdir())
            if p.suffix != '.txt' and p.name != 'h_broken.jpg'}


def test_mixed_folder_with_an_unreadable_file(pipeline_run, single_scale_bag, tmp_path, capsys):
    sizes = _mixed_folder(pipeline_run, tmp_path / 'mixed')
    out = tmp_path / 'out'

    code, _, err = _infer(capsys, single_scale_bag, tmp_path / 'mixed', '--out', out)

    assert code == 1  # one image failed
    (error, ) = _error_lines(err)
    assert error.startswith(f'error: {tmp_path / "mixed" / "h_broken.jpg"}: cannot read the '
                            'image')
    predictions = load_json(out / 'predictions.json')
    assert {i['file_name']: (i['height'], i['width']) for i in predictions['images']} == sizes
    assert [f['file_name'] for f in predictions['failed']] == ['h_broken.jpg']
    by_id = {i['id']: i for i in predictions['images']}
    results: dict[str, list[dict]] = {name: [] for name in sizes}
    bag = read_bag(single_scale_bag)
    for det in predictions['results']:
        image = by_id[det['image_id']]
        assert det['segmentation']['size'] == [image['height'], image['width']]
        assert det['category_id'] in bag.category_ids
        results[image['file_name']].append({k: v for k, v in det.items() if k != 'image_id'})
    assert all(results.values())
    # the models see three colour channels: a grey image as its grey copied to each,
    # a PNG with alpha without the alpha
    assert results['d_grey.png'] == results['e_grey_as_rgb.png']
    assert results['c_alpha.png'] == results['b_rgb.png']
    for name, (height, width) in sizes.items():
        overlay = Image.open(out / 'vis' / Path(name).with_suffix('.jpg'))
        assert overlay.size == (width, height)

    with headless_chromium(tmp_path / 'profile') as driver:
        page = open_page(driver, out / 'report' / 'index.html', tmp_path / 'infer_report.png')
    assert_nothing_broken(page, out / 'report' / 'index.html')
    assert len(page.images) == len(sizes)
    assert any('h_broken.jpg' in t and 'cannot read the image' in t for t in page.tables)
    assert (tmp_path / 'infer_report.png').stat().st_size > 10_000


def test_refuses_an_output_folder_it_did_not_write(single_scale_bag, tmp_path, capsys):
    images = tmp_path / 'images'
    images.mkdir()
    Image.new('RGB', (64, 48), (90, 90, 90)).save(images / 'plain.png')
    precious = tmp_path / 'precious'
    precious.mkdir()
    (precious / 'notes.txt').write_text('keep me')

    code, _, err = _infer(capsys, single_scale_bag, images, '--out', precious, '--no-vis')

    assert code == 255
    assert _error_lines(err) == [f'error: {precious}: exists and is not the output of an '
                                 'earlier run (no predictions.json); choose another --out']
    assert sorted(p.name for p in precious.iterdir()) == ['notes.txt']
    code, _, err = _infer(capsys, single_scale_bag, tmp_path / 'none', '--out', tmp_path / 'o')
    assert code == 255 and _error_lines(err) == [
        f'error: {tmp_path / "none"}: no such file or folder']
    assert not (tmp_path / 'o').exists()


def test_python_entry_point_takes_paths_and_arrays(single_scale_bag, pipeline_run, tmp_path):
    data_root, _, dataset, _ = pipeline_run
    path = tmp_path / 'image.png'  # lossless: the array below holds the same pixels
    Image.open(sorted((data_root / dataset / 'inference').glob('*.jpg'))[0]).save(path)
    bag = ModelBag.from_file(single_scale_bag)
    one = bag(path)
    both = bag([path, np.asarray(Image.open(path).convert('RGB'))[:, :, ::-1]])  # BGR array
    assert one.detections and (one.height, one.width) == Image.open(path).size[::-1]
    assert both[0].detections == one.detections
    assert [{k: v for k, v in d.items() if k != 'image_id'} for d in both[1].detections] == [
        {k: v for k, v in d.items() if k != 'image_id'} for d in one.detections]
    assert {d['image_id'] for d in both[1].detections} == {2}


# --- the manifest alone (no models run) ---


def _checkpoint(path: Path, value: float) -> Path:
    torch.save({'meta': {'iter': 2}, 'state_dict': {'w': torch.full((2, ), value)},
                'optimizer': {'state': {}}, 'message_hub': {}}, path)
    return path


@pytest.fixture
def small_bag(tmp_path) -> Bag:
    files = tmp_path / 'run'
    files.mkdir()

    def model(name: str) -> dict:
        (files / f'{name}.py').write_text(f'# config of {name}\n')
        return dict(name=name, config=files / f'{name}.py',
                    checkpoint=_checkpoint(files / f'{name}.pth', 1.0))

    return Bag(dataset='Widget', categories=(dict(id=3, name='dent'), dict(id=7, name='spot')),
               instance_models=(InstanceModel(**model('a'), weight=0.5, tta=True),
                                InstanceModel(**model('b'), weight=1.0, tta=False)),
               semantic_model=BagModel(**model('sem')), fusion=Fusion('a', 0.4, 'connected'),
               ensemble=dict(iou_thr=0.6, max_per_img=50))


def test_bag_round_trip_is_relative_and_reuses_unchanged_weights(small_bag, tmp_path):
    path = tmp_path / 'bags' / 'Widget.json'
    written = write_bag(small_bag, path)
    moved = tmp_path / 'elsewhere'
    shutil.copytree(tmp_path / 'bags', moved)
    read = read_bag(moved / 'Widget.json')
    assert read == replace(written, instance_models=tuple(
        replace(m, config=moved / 'Widget' / f'{m.name}.py',
                checkpoint=moved / 'Widget' / f'{m.name}.pth') for m in written.instance_models),
        semantic_model=replace(written.semantic_model, config=moved / 'Widget' / 'sem.py',
                               checkpoint=moved / 'Widget' / 'sem.pth'))
    assert read.weights == [0.5, 1.0] and read.fusion == Fusion('a', 0.4, 'connected')
    weights = torch.load(read.instance_models[0].checkpoint, weights_only=False)
    assert set(weights) == {'meta', 'state_dict'} and weights['state_dict']['w'].tolist() == [1, 1]

    inode = (path.with_suffix('') / 'a.pth').stat().st_ino
    _checkpoint(small_bag.instance_models[1].checkpoint, 2.0)  # model b trained again
    write_bag(small_bag, path)
    assert (path.with_suffix('') / 'a.pth').stat().st_ino == inode  # kept
    assert torch.load(path.with_suffix('') / 'b.pth', weights_only=False)[
        'state_dict']['w'].tolist() == [2, 2]


@pytest.mark.parametrize('change, message', [
    (lambda m: m.update(version=2), 'bag version 2 is not supported'),
    (lambda m: m.update(format='other'), 'not a model bag'),
    (lambda m: m['instance_models'][1].update(weight=-1),
     'instance model 1: "weight" must be >= 0'),
    (lambda m: m['instance_models'][0].update(tta='yes'),
     'instance model 0: "tta" must be of type bool'),
    (lambda m: m['instance_models'][0].pop('checkpoint'), 'instance model 0: missing "checkpoint"'),
    (lambda m: m['instance_models'][0].update(checkpoint='Widget/none.pth'),
     'instance model 0: "checkpoint": '),
    (lambda m: m['ensemble'].update(suppress_everything=True),
     '"ensemble": unknown option(s) suppress_everything (known: suppress, iou_thr'),
    (lambda m: m['fusion'].update(into='c'), "fusion into 'c', which is not one of"),
    (lambda m: m['fusion'].update(rule='nearest'), "fusion rule 'nearest' is not one of box"),
    (lambda m: m.update(fusion=None), 'a semantic model needs a fusion'),
    (lambda m: m['categories'].append(dict(id=3, name='again')), 'duplicate category ids'),
    (lambda m: m.update(instance_models=[]), '"instance_models" is empty'),
])
def test_bad_manifest_is_a_one_line_error(small_bag, tmp_path, change, message):
    path = tmp_path / 'bags' / 'Widget.json'
    write_bag(small_bag, path)
    manifest = load_json(path)
    change(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(FormatError) as err:
        read_bag(path)
    text = str(err.value)
    assert text.startswith(f'{path}: ') and message in text and '\n' not in text


def test_images_from_files_folders_and_patterns(tmp_path):
    for name in ('a.jpg', 'b.PNG', 'c.txt', 'sub/d.tif', 'sub/deeper/e.bmp'):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b'')
    found = find_images([tmp_path, tmp_path / 'c.txt', tmp_path / 'a.jpg',
                         f'{tmp_path}/sub/**/*.bmp'])
    assert [(f.name, f.path) for f in found] == [
        ('a.jpg', tmp_path / 'a.jpg'), ('b.PNG', tmp_path / 'b.PNG'),  # folder: not recursive
        ('c.txt', tmp_path / 'c.txt'),  # named: taken whatever its suffix
        ('sub/deeper/e.bmp', tmp_path / 'sub' / 'deeper' / 'e.bmp')]
    assert [f.name for f in find_images([tmp_path / 'sub'])] == ['d.tif']
    for bad, message in ((tmp_path / 'none.jpg', 'no such file or folder'),
                         (tmp_path / 'sub' / 'deeper' / 'x', 'no such file or folder'),
                         (f'{tmp_path}/*.gif', 'no image file matches this pattern')):
        with pytest.raises(FormatError, match=message):
            find_images([bad])
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FormatError, match='no image files'):
        find_images([tmp_path / 'empty'])
