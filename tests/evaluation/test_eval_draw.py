"""Drawing: class colours land on the box outline, ground truth is dashed, grids have the right shape,
labels of near-duplicate boxes never cover each other, text grows with the image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neo.evaluation.draw import (
    batch_comparison_grid,
    class_color,
    comparison_grid,
    draw_boxes,
    draw_ground_truth,
    draw_prediction,
    place_tags,
)

NAMES = ["car", "person", "dog"]


def _mask_of(image: np.ndarray, color) -> np.ndarray:
    return np.all(image == np.asarray(color, np.uint8), axis=-1)


def test_class_colors_are_stable_and_distinct():
    colors = [class_color(i) for i in range(20)]
    assert colors == [class_color(i) for i in range(20)]
    assert len(set(colors)) == 20
    assert all(0 <= c <= 255 for color in colors for c in color)


def test_prediction_box_is_drawn_in_its_class_colour():
    image = np.zeros((90, 160, 3), np.uint8)
    prediction = {
        "boxes": torch.tensor([[40.0, 30.0, 120.0, 80.0]]),
        "scores": torch.tensor([0.9]),
        "labels": torch.tensor([2]),
    }
    drawn = draw_prediction(image, prediction, NAMES)
    assert image.sum() == 0  # input untouched
    assert drawn.dtype == np.uint8 and drawn.shape == (90, 160, 3)
    mask = _mask_of(drawn, class_color(2))
    # outline: the left edge column inside the box is class-coloured along its height
    assert mask[45:75, 40].all() and mask[45:75, 120].all()
    assert mask[80, 50:110].all()
    # interior (away from the tag above the top edge) stays black
    assert drawn[40:75, 45:115].sum() == 0
    # nothing of the colour far outside the box and its tag
    assert not mask[:, :30].any() and not mask[85:, :].any()


def test_score_threshold_and_ground_truth_style():
    image = np.zeros((90, 160, 3), np.uint8)
    low = {"boxes": [[10, 10, 60, 60]], "scores": [0.1], "labels": [0]}
    assert draw_prediction(image, low, NAMES, score_threshold=0.3).sum() == 0
    gt = draw_ground_truth(image, {"boxes": np.array([[20.0, 20.0, 140.0, 70.0]]), "labels": np.array([1])})
    edge = _mask_of(gt, class_color(1))[70, 20:140]
    assert 0.3 < edge.mean() < 0.9  # dashed: part of the bottom edge is coloured, part is not


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="uint8 RGB"):
        draw_boxes(np.zeros((10, 10, 3), np.float32), [[0, 0, 5, 5]], [0])
    with pytest.raises(ValueError, match="same length"):
        draw_boxes(np.zeros((10, 10, 3), np.uint8), [[0, 0, 5, 5]], [0, 1])


def test_comparison_grid_layout():
    images = [np.zeros((36, 64, 3), np.uint8), np.zeros((72, 128, 3), np.uint8)]
    preds = [{"boxes": [[2, 2, 30, 30]], "scores": [0.9], "labels": [0]}] * 2
    gts = [{"boxes": [[2, 2, 30, 30]], "labels": [0]}] * 2
    grid = comparison_grid(images, preds, gts, NAMES, max_width=None, gap=4)
    assert grid.dtype == np.uint8 and grid.shape == (36 + 4 + 72, 128 * 2 + 4, 3)
    small = comparison_grid(images, preds, None, NAMES, max_width=32)
    assert small.shape == (18 + 4 + 18, 32, 3)


def test_batch_grid_maps_original_pixels_onto_the_canvas():
    """A 100x100 original letterboxed into a 90x160 canvas: scale 0.9, pad_x 35."""
    images = torch.zeros(2, 3, 90, 160, dtype=torch.uint8)
    target = {
        "boxes": torch.tensor([[0.5, 0.5, 0.25, 0.5]]),  # canvas cxcywh normalised
        "labels": torch.tensor([1]),
        "letterbox": torch.tensor([0.9, 0.9, 35.0, 0.0]),
    }
    # original box (50, 0)-(100, 50) -> canvas (80, 0)-(125, 45)
    pred = {
        "boxes": torch.tensor([[50.0, 0.0, 100.0, 50.0]]),
        "scores": torch.tensor([0.8]),
        "labels": torch.tensor([0]),
    }
    grid = batch_comparison_grid(images, [target] * 2, [pred] * 2, NAMES, max_images=1, max_width=None)
    assert grid.shape == (90, 160 * 2 + 4, 3)
    left, right = grid[:, :160], grid[:, 164:]
    assert _mask_of(left, class_color(0))[
        20:40, 125
    ].all()  # below the tag; prediction's right edge at x = 125
    gt_mask = _mask_of(right, class_color(1))  # GT canvas box (60, 22.5)-(100, 67.5), dashed
    assert gt_mask[30:60, 60].any() and not gt_mask[30:60, 80].any()


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_tags_of_stacked_near_duplicates_never_cover_each_other():
    """Ten near-identical boxes (what a model without NMS draws): every tag gets its own spot."""
    boxes = [(400 + i, 300 + i, 800 + i, 700 - i) for i in range(10)]
    rects = place_tags(boxes, [(150, 30)] * 10, (1080, 1920))
    assert not any(_overlap(a, b) for i, a in enumerate(rects) for b in rects[i + 1:])
    assert all(0 <= r[0] and r[2] <= 1920 and 0 <= r[1] and r[3] <= 1080 for r in rects)
    assert rects[0][3] == 300  # the first (most confident) tag sits right above its box


def test_both_labels_of_identical_boxes_stay_visible():
    """Two classes on the same box: each class's tag colour is still on the picture (none overprinted)."""
    image = np.zeros((1080, 1920, 3), np.uint8)
    drawn = draw_boxes(image, [[500, 400, 900, 800], [500, 400, 900, 800]], [0, 1], [0.9, 0.8], NAMES)
    above = drawn[:400]  # the first tag sits above the boxes, the second just inside the top edge
    inside = drawn[400:800, 500:900]
    assert _mask_of(above, class_color(0)).sum() > 500
    assert _mask_of(inside, class_color(1)).sum() > 500


def test_text_and_lines_grow_with_the_image():
    """A 1080p frame gets thicker lines and bigger tags than a 360p one (readable at full size)."""
    def tag_height(h, w):
        drawn = draw_boxes(np.zeros((h, w, 3), np.uint8), [[w // 4, h // 2, w // 2, h - 10]], [0], [0.9], NAMES)
        rows = np.flatnonzero(_mask_of(drawn[: h // 2], class_color(0)).any(axis=1))
        return rows.max() - rows.min() + 1

    assert tag_height(1080, 1920) >= 1.4 * tag_height(360, 640)
