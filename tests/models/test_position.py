"""2D sin-cos embedding: row-major, equal to the official formula on square maps, distinct positions."""

from __future__ import annotations

import pytest
import torch

from neo.models.rtdetr import sincos_2d_embedding


def official_formula(w: int, h: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """The official RT-DETR formula (x-major flattening), written from its published definition."""
    grid_w, grid_h = torch.meshgrid(
        torch.arange(w, dtype=torch.float32), torch.arange(h, dtype=torch.float32), indexing="ij"
    )
    pos_dim = dim // 4
    omega = 1.0 / temperature ** (torch.arange(pos_dim, dtype=torch.float32) / pos_dim)
    out_w = grid_w.flatten()[..., None] @ omega[None]
    out_h = grid_h.flatten()[..., None] @ omega[None]
    return torch.cat([out_w.sin(), out_w.cos(), out_h.sin(), out_h.cos()], dim=1)[None]


def test_equals_official_on_square_maps():
    for size in (1, 5, 20):
        assert torch.allclose(
            sincos_2d_embedding(size, size, 256), official_formula(size, size, 256), atol=1e-6
        )


def test_row_major_layout_on_non_square_maps():
    h, w, dim = 34, 60, 64  # the stride-32 map of 1080x1920
    emb = sincos_2d_embedding(h, w, dim)[0]
    assert emb.shape == (h * w, dim)
    q = dim // 4
    for y, x in [(0, 0), (3, 17), (33, 59)]:
        row = emb[y * w + x]  # features flatten as index = y * w + x
        # first half encodes the row y, second half the column x
        assert torch.allclose(row[:q], torch.sin(y * _omega(q)), atol=1e-6)
        assert torch.allclose(row[q : 2 * q], torch.cos(y * _omega(q)), atol=1e-6)
        assert torch.allclose(row[2 * q : 3 * q], torch.sin(x * _omega(q)), atol=1e-6)
        assert torch.allclose(row[3 * q :], torch.cos(x * _omega(q)), atol=1e-6)


def _omega(q: int) -> torch.Tensor:
    return 1.0 / 10000.0 ** (torch.arange(q, dtype=torch.float32) / q)


def test_distinct_positions_on_non_square_maps():
    for h, w in [(34, 60), (29, 50), (23, 40)]:
        emb = sincos_2d_embedding(h, w, 256)[0]
        assert torch.unique(emb, dim=0).shape[0] == h * w
        # the official formula reshaped row-major would give row y, column x a different position
        scrambled = official_formula(w, h, 256)[0]
        assert not torch.allclose(emb, scrambled, atol=1e-3)


def test_official_layout_reproduces_the_official_formula_on_every_size():
    for h, w in [(1, 1), (5, 5), (12, 20), (20, 12), (17, 30), (34, 60)]:
        got = sincos_2d_embedding(h, w, 64, layout="official")
        assert got.shape == (1, h * w, 64)
        torch.testing.assert_close(got, official_formula(w, h, 64), rtol=0, atol=1e-6)
        torch.testing.assert_close(sincos_2d_embedding(h, w, 64, layout="consistent"), sincos_2d_embedding(h, w, 64),
                                   rtol=0, atol=0)
    with pytest.raises(ValueError, match="consistent.*official.*'x-major'"):
        sincos_2d_embedding(4, 4, 64, layout="x-major")


def test_encoder_layout_option_changes_outputs_only_off_square():
    from neo.models.rtdetr import HybridEncoder

    torch.manual_seed(0)
    kwargs = {"in_channels": [8, 16, 32], "hidden_dim": 32, "num_heads": 4, "ffn_dim": 64}
    consistent = HybridEncoder(**kwargs).eval()
    official = HybridEncoder(**kwargs, position_embedding="official").eval()
    official.load_state_dict(consistent.state_dict())
    for (h, w), same in [((8, 8), True), ((9, 16), False)]:
        feats = [torch.randn(1, c, h * 4 // s, w * 4 // s) for c, s in zip((8, 16, 32), (1, 2, 4), strict=True)]
        with torch.no_grad():
            a, b = consistent(feats)[-1], official(feats)[-1]
        assert torch.equal(a, b) == same
    try:
        HybridEncoder(**kwargs, position_embedding="x-major")
    except ValueError as exc:
        assert "consistent" in str(exc) and "official" in str(exc)
    else:
        raise AssertionError("an unknown position_embedding was accepted")
