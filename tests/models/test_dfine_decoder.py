"""D-FINE decoder and encoder: shapes at 16:9 sizes, FDR invariants, gate, eval path."""

from __future__ import annotations

import pytest
import torch

from neo.models.dfine.decoder import DFINEDecoder
from neo.models.dfine.decoder_layer import Gate
from neo.models.dfine.encoder import DFINEHybridEncoder
from neo.models.dfine.fdr import distance_to_box, integral

C = 3


def _targets():
    return [
        {"labels": torch.tensor([0, 2]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.3], [0.3, 0.3, 0.1, 0.1]])},
        {"labels": torch.tensor([1]), "boxes": torch.tensor([[0.6, 0.4, 0.3, 0.2]])},
    ]


def _decoder(**kw):
    torch.manual_seed(0)
    args = dict(num_classes=C, feat_channels=[32, 32, 32], hidden_dim=32, num_queries=20, num_layers=3,
                num_heads=4, ffn_dim=64, num_points=[3, 6, 3], num_denoising=10, reg_max=8)
    args.update(kw)
    return DFINEDecoder(**args)


def _feats(h: int, w: int, channels=(32, 32, 32)):
    """Encoder-like maps at strides 8/16/32 of an H x W image (ceil rounding, as the convs give)."""
    return [torch.randn(2, c, -(-h // s), -(-w // s)) for c, s in zip(channels, (8, 16, 32), strict=True)]


@pytest.mark.parametrize("h, w", [(72, 128), (90, 160), (135, 240)])
def test_training_outputs_have_documented_shapes_at_16_9(h, w):
    dec = _decoder().train()
    out = dec(_feats(h, w), _targets())
    q, bins = 20, 4 * 9
    assert out["pred_logits"].shape == (2, q, C) and out["pred_boxes"].shape == (2, q, 4)
    assert out["pred_corners"].shape == (2, q, bins) and out["ref_points"].shape == (2, q, 4)
    assert len(out["aux_outputs"]) == 2
    assert all(a["pred_corners"].shape == (2, q, bins) for a in out["aux_outputs"])
    assert out["pre_outputs"]["pred_boxes"].shape == (2, q, 4)
    assert out["enc_outputs"]["pred_logits"].shape == (2, q, C)
    d = out["dn_meta"]["dn_num_split"][0]
    assert len(out["dn_outputs"]) == 3 and out["dn_outputs"][0]["pred_corners"].shape == (2, d, bins)
    assert out["dn_pre_outputs"]["pred_boxes"].shape == (2, d, 4)
    assert out["project"].shape == (9,) and out["reg_scale"] == 4.0


def test_eval_returns_only_the_eval_layer():
    dec = _decoder(eval_idx=1).eval()
    with torch.no_grad():
        out = dec(_feats(72, 128))
    assert set(out) == {"pred_logits", "pred_boxes"}
    assert out["pred_boxes"].shape == (2, 20, 4)


def test_zero_distributions_leave_the_layer0_box_unchanged():
    """Fresh heads predict flat distributions: expected edge offsets are 0, so every layer's box is the
    layer-0 (pre) box and LQE adds nothing."""
    dec = _decoder().train()
    out = dec(_feats(72, 128), _targets())
    torch.testing.assert_close(out["pred_boxes"], out["ref_points"])
    torch.testing.assert_close(out["ref_points"], out["pre_outputs"]["pred_boxes"].detach())
    assert not torch.equal(out["pred_boxes"], torch.full_like(out["pred_boxes"], 0.5))


def test_distributions_are_refined_residually_across_layers():
    """Layer i's bin logits are its head's output plus layer i-1's logits: a bias on layer 0's head only
    carries into every later layer."""
    dec = _decoder().train()
    with torch.no_grad():
        dec.dec_bbox_head[0].layers[-1].bias.copy_(torch.linspace(-1, 1, 36))
    out = dec(_feats(72, 128), _targets())
    first = out["aux_outputs"][0]["pred_corners"]
    torch.testing.assert_close(out["aux_outputs"][1]["pred_corners"], first)
    torch.testing.assert_close(out["pred_corners"], first)
    assert not torch.allclose(out["pred_boxes"], out["ref_points"])


def test_gradients_reach_every_trainable_parameter():
    dec = _decoder().train()
    out = dec(_feats(72, 128), _targets())
    loss = out["pred_boxes"].sum() + out["pred_logits"].sum() + out["pre_outputs"]["pred_boxes"].sum()
    loss = loss + out["enc_outputs"]["pred_logits"].sum() + out["enc_outputs"]["pred_boxes"].sum()
    loss = loss + sum(o["pred_logits"].sum() for o in out["dn_outputs"])
    loss.backward()
    missing = [n for n, p in dec.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert not dec.up.requires_grad and not dec.reg_scale.requires_grad


def test_boxes_stay_fp32_under_bf16_autocast():
    dec = _decoder().train()
    with torch.no_grad():
        dec.dec_bbox_head[0].layers[-1].bias.copy_(torch.linspace(-1, 1, 36))
    feats = _feats(72, 128)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = dec(feats, _targets())
    assert out["pred_logits"].dtype == torch.bfloat16 and out["pred_boxes"].dtype == torch.float32
    exact = distance_to_box(out["ref_points"].float(), integral(out["pred_corners"].float(), dec.project), 4.0)
    torch.testing.assert_close(out["pred_boxes"], exact, rtol=0, atol=1e-6)


def test_gate_starts_as_the_normalised_average():
    gate = Gate(8)
    x, y = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    torch.testing.assert_close(gate(x, y), torch.nn.functional.layer_norm(0.5 * x + 0.5 * y, (8,)))


def test_level_with_hidden_channels_enters_unprojected():
    dec = _decoder(feat_channels=[32, 48, 32])
    assert [type(p).__name__ for p in dec.input_proj] == ["Identity", "ConvNormLayer", "Identity"]


@pytest.mark.parametrize("h, w", [(72, 128), (99, 176)])
def test_encoder_keeps_level_sizes_at_any_size(h, w):
    torch.manual_seed(0)
    enc = DFINEHybridEncoder([16, 24, 40], hidden_dim=32, num_heads=4, ffn_dim=64, expansion=0.5, depth_mult=0.34)
    feats = _feats(h, w, (16, 24, 40))
    outs = enc(feats)
    assert [o.shape for o in outs] == [torch.Size([2, 32, *f.shape[-2:]]) for f in feats]
    enc.eval()
    with torch.no_grad():
        before = enc(feats)
        enc.deploy()
        after = enc(feats)
    for a, b in zip(before, after, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
