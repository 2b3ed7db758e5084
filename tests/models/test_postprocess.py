"""PostProcessor: top-k over query x class, letterbox undone to original pixels, optional threshold/NMS."""

from __future__ import annotations

import torch

from neo.models.rtdetr import PostProcessor


def _outputs(logits, boxes, h=360, w=640):
    return {"pred_logits": logits, "pred_boxes": boxes, "image_size": torch.tensor([h, w])}


def test_boxes_return_to_original_pixels_through_the_letterbox():
    # a 1000x1000 original letterboxed into 360x640: scale 0.36, pad_x = (640 - 360) / 2 = 140
    target = {"orig_size": torch.tensor([1000, 1000]), "letterbox": torch.tensor([0.36, 0.36, 140.0, 0.0])}
    # an object at original xyxy (100, 200, 500, 800) -> canvas (176, 72, 320, 288)
    cx, cy, bw, bh = (176 + 320) / 2 / 640, (72 + 288) / 2 / 360, 144 / 640, 216 / 360
    logits = torch.full((1, 2, 3), -10.0)
    logits[0, 1, 2] = 5.0
    boxes = torch.tensor([[[0.5, 0.5, 0.1, 0.1], [cx, cy, bw, bh]]])
    det = PostProcessor(3, num_top_queries=4)(_outputs(logits, boxes), [target])[0]
    assert det["labels"][0].item() == 2
    assert torch.allclose(det["boxes"][0], torch.tensor([100.0, 200.0, 500.0, 800.0]), atol=1e-3)
    assert det["scores"].shape == (4,) and torch.all(det["scores"][:-1] >= det["scores"][1:])


def test_topk_over_queries_and_classes_and_clipping():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 4)
    boxes = torch.tensor([0.5, 0.5, 1.4, 1.4]).expand(2, 5, 4).clone()  # overflows the canvas
    target = {"orig_size": torch.tensor([360, 640]), "letterbox": torch.tensor([1.0, 1.0, 0.0, 0.0])}
    dets = PostProcessor(4, num_top_queries=7)(_outputs(logits, boxes), [target, target])
    for b, det in enumerate(dets):
        scores, index = logits[b].sigmoid().flatten().topk(7)
        assert torch.allclose(det["scores"], scores) and torch.equal(det["labels"], index % 4)
        assert det["boxes"].min() >= 0 and det["boxes"][:, 2].max() <= 640 and det["boxes"][:, 3].max() <= 360


def test_normalised_without_targets_and_optional_filters():
    logits = torch.tensor([[[4.0, -9.0], [3.9, -9.0], [-9.0, 2.0]]])
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.51, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2]]])
    det = PostProcessor(2, num_top_queries=6)(_outputs(logits, boxes))[0]
    assert torch.allclose(det["boxes"][0], torch.tensor([0.4, 0.4, 0.6, 0.6]))
    det = PostProcessor(2, num_top_queries=6, score_threshold=0.5, nms_iou_threshold=0.5)(
        _outputs(logits, boxes)
    )[0]
    # query 1 is suppressed by query 0 (same class, IoU 0.9); query 2 has another class and survives
    assert det["labels"].tolist() == [0, 1]
    assert torch.all(det["scores"] > 0.5)
