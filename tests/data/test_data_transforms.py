"""Each transform moves a known box exactly; letterbox -> inverse round trip under 0.5 px."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest

from neo.data.augment import RandomIoUCrop, ZoomOut
from neo.data.transforms import DetectionTransform, letterbox, letterbox_geometry, unletterbox_boxes


def painted(h: int, w: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """Black uint8 [h, w, 3] image with a white rectangle filling xyxy `box` (pixel edges)."""
    img = np.zeros((h, w, 3), np.uint8)
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = 255
    return img


def white_extent(img: np.ndarray) -> np.ndarray:
    """xyxy pixel-edge extent of the bright pixels (> 127) -> [4]."""
    ys, xs = np.nonzero(img[..., 0] > 127)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


@pytest.mark.parametrize("src,dst", [((480, 640), (720, 1280)), ((1080, 1920), (360, 640)), ((1000, 500), (360, 640)),
                                     ((359, 641), (720, 1280)), ((1080, 1920), (1080, 1920))])
def test_letterbox_moves_box_exactly_and_round_trips(src, dst):
    box = (src[1] // 5, src[0] // 4, src[1] // 2, src[0] * 3 // 4)
    canvas, boxes, params = letterbox(painted(*src, box), np.array([box], np.float32), dst)
    assert canvas.shape == (*dst, 3) and canvas.dtype == np.uint8
    g = letterbox_geometry(src, dst)
    sx, sy, px, py = params
    expect = np.array([box[0] * sx + px, box[1] * sy + py, box[2] * sx + px, box[3] * sy + py])
    np.testing.assert_allclose(boxes[0], expect, atol=1e-3)
    np.testing.assert_allclose(boxes[0], white_extent(canvas), atol=1.0)  # pixels agree with the box
    assert (g.pad_x, g.pad_y) == (px, py)
    back = unletterbox_boxes(boxes, params)
    assert np.abs(back[0] - np.array(box)).max() < 0.5


def test_letterbox_of_4x3_pads_left_and_right_equally():
    canvas, _, params = letterbox(np.full((480, 640, 3), 200, np.uint8), np.zeros((0, 4)), (720, 1280), fill=0)
    assert tuple(params) == (1.5, 1.5, 160.0, 0.0)
    assert canvas[:, :160].max() == 0 and canvas[:, -160:].max() == 0 and canvas[:, 160:1120].min() == 200


def test_hflip_moves_box_exactly():
    t = A.Compose([A.HorizontalFlip(p=1.0)], bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"]))
    out = t(image=painted(180, 320, (10, 20, 110, 90)), bboxes=np.array([[10, 20, 110, 90]], np.float32), labels=[0])
    np.testing.assert_allclose(out["bboxes"][0], [210, 20, 310, 90], atol=1e-3)
    np.testing.assert_allclose(white_extent(out["image"]), [210, 20, 310, 90])


def test_zoom_out_moves_box_exactly():
    z = ZoomOut(max_ratio=4.0, p=1.0)
    zoom_box = (40, 30, 160, 90)  # left, top, new_w, new_h: ratio 2 on a 320x180 image
    img = z.apply(painted(180, 320, (80, 40, 240, 140)), zoom_box=zoom_box)
    norm = np.array([[80 / 320, 40 / 180, 240 / 320, 140 / 180]])
    out = z.apply_to_bboxes(norm, zoom_box=zoom_box, shape=(180, 320)) * [320, 180, 320, 180]
    np.testing.assert_allclose(out[0], [80, 50, 160, 100], atol=1e-6)
    np.testing.assert_allclose(white_extent(img), out[0], atol=1.0)


def test_iou_crop_keeps_boxes_consistent_with_pixels():
    crop = RandomIoUCrop(p=1.0, min_ious=(0.3,))
    t = A.Compose([crop], bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"], clip=True), seed=3)
    box = [100, 50, 200, 130]
    for _ in range(10):
        out = t(image=painted(180, 320, tuple(box)), bboxes=np.array([box], np.float32), labels=[1])
        assert len(out["bboxes"]) == 1  # the crop keeps the box centre
        np.testing.assert_allclose(out["bboxes"][0], white_extent(out["image"]), atol=1e-3)


@pytest.mark.parametrize("size", [(360, 640), (270, 480)])
def test_full_train_transform_boxes_follow_pixels(size):
    t = DetectionTransform(train=True, photometric_p=0.0)
    sizes_seen = set()
    for seed in range(30):
        canvas, boxes, labels, params = t(painted(180, 320, (100, 50, 200, 130)), np.array([[100, 50, 200, 130]], np.float32),
                                          np.array([2]), size, heavy=True, seed=seed)
        assert canvas.shape == (*size, 3) and canvas.dtype == np.uint8
        sizes_seen.add(tuple(np.round(boxes[0, 2:] - boxes[0, :2])))
        assert labels.tolist() == [2]
        np.testing.assert_allclose(boxes[0], white_extent(canvas), atol=1.5)
    assert len(sizes_seen) > 5  # the augmentation really varies the geometry


def test_seeded_transform_is_reproducible_and_eval_has_no_randomness():
    img, box = painted(180, 320, (100, 50, 200, 130)), np.array([[100, 50, 200, 130]], np.float32)
    train = DetectionTransform(train=True)
    a = train(img, box, np.array([0]), (360, 640), seed=7)
    b = train(img, box, np.array([0]), (360, 640), seed=7)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    ev = DetectionTransform(train=False)
    c = ev(img, box, np.array([0]), (360, 640), seed=1)
    np.testing.assert_allclose(c[1][0], [200, 100, 400, 260])  # exact 2x letterbox, no augmentation
    light = train(img, box, np.array([0]), (360, 640), heavy=False, seed=5)
    assert tuple(light[3]) == (2.0, 2.0, 0.0, 0.0)  # no heavy aug: letterbox of the whole image


@pytest.mark.parametrize("b,c,s", [(1.1, 1.0, 1.0), (1.0, 1.4, 1.0), (1.0, 0.6, 1.0), (1.0, 1.0, 1.4), (1.0, 1.0, 0.5)])
def test_fused_photometric_matches_torchvision(b, c, s):
    import torch
    import torchvision.transforms.v2.functional as F

    from neo.data.augment import fused_colour

    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(128, 30, (36, 64, 3)), 0, 255).astype(np.uint8)
    x = torch.from_numpy(img).permute(2, 0, 1)
    ref = F.adjust_saturation(F.adjust_contrast(F.adjust_brightness(x, b), c), s).permute(1, 2, 0).numpy()
    assert np.abs(fused_colour(img, b, c, s, 0.0).astype(int) - ref).max() <= 1


def test_fused_hue_keeps_luma_and_identity_is_free():
    from neo.data.augment import _LUMA, fused_colour

    rng = np.random.default_rng(1)
    img = rng.integers(40, 215, (36, 64, 3), dtype=np.uint8)
    assert fused_colour(img, 1.0, 1.0, 1.0, 0.0) is img
    out = fused_colour(img, 1.0, 1.0, 1.0, 0.05)
    assert np.abs(out @ _LUMA - img @ _LUMA).max() < 1.5 and np.abs(out.astype(int) - img).mean() > 2
