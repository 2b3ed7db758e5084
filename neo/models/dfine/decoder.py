"""D-FINE decoder: RT-DETR's anchors, memory and denoising queries (:class:`~neo.models.rtdetr.decoder.QueryDecoder`),
its own query selection, then fine-grained distribution refinement (FDR).

Layer 0 predicts a plain box (the "pre" box) that becomes the reference of every later step; each layer
i then predicts four edge distributions of ``reg_max + 1`` bins, added to the previous layer's logits
(residual refinement of the distributions), and the box is the reference moved by the expected edge
distances (:func:`neo.models.dfine.fdr.integral`, :func:`~neo.models.dfine.fdr.distance_to_box`).
Class scores get the LQE term (how peaked the distributions are).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from neo.models.rtdetr.decoder import QueryDecoder, TransformerDecoder
from neo.models.rtdetr.layers import MLP, ConvNormLayer, inverse_sigmoid

from .decoder_layer import DFINEDecoderLayer
from .fdr import LocalizationQuality, distance_to_box, integral, weighting_function


class DFINELayers(TransformerDecoder):
    """RT-DETR's stack of decoder layers with their LQE heads (keys `layers.{i}.*`, `lqe_layers.{i}.*`)."""

    def __init__(self, layer: DFINEDecoderLayer, num_layers: int, reg_max: int) -> None:
        super().__init__(layer, num_layers)
        self.lqe_layers = nn.ModuleList(LocalizationQuality(reg_max, 4, 64, 2) for _ in range(num_layers))


class DFINEDecoder(QueryDecoder):
    """Query selection + denoising + FDR decoder layers.

    Args:
        num_classes: number of classes C.
        feat_channels: channels of the encoder levels (set by RTDETR from the encoder); a level whose
            channels equal hidden_dim enters unprojected (as officially).
        hidden_dim, num_queries, num_layers, num_heads, ffn_dim, dropout, act: decoder settings.
        num_points: deformable points per level (int, or a list per level).
        num_denoising, label_noise_ratio, box_noise_scale: contrastive denoising (0 queries disables).
        eval_idx: last layer run at eval (negative counts from the end).
        reg_max: bins per edge distribution minus one (R; R + 1 bins).
        reg_scale, up: the weighting function's curvature and bound (official 4 (8 for X) and 0.5).
        anchor_eps, anchor_size: anchors valid where all coords are in (eps, 1 - eps); wh = size * 2^level.

    forward(feats: list of [B, feat_channels[l], H_l, W_l], targets) -> dict with
        "pred_logits" [B, Q, C] (LQE-adjusted), "pred_boxes" [B, Q, 4] (cxcywh in [0, 1]); in training also
        "pred_corners" [B, Q, 4 * (R + 1)] (edge-bin logits of the last layer), "ref_points" [B, Q, 4]
        (the layer-0 boxes every layer refines, detached),
        "aux_outputs": list over layers 0..N-2 of dicts with the same four keys,
        "pre_outputs" {"pred_logits", "pred_boxes"} (layer 0's plain box head),
        "enc_outputs" {"pred_logits" [B, Q, C], "pred_boxes" [B, Q, 4]} (encoder top-k proposals),
        "project" [R + 1] (bin values W(n)), "reg_scale" (float), and with denoising
        "dn_outputs" (list over all N layers, D queries, same four keys), "dn_pre_outputs", "dn_meta".
    """

    def __init__(
        self,
        num_classes: int = 80,
        feat_channels: list[int] = (256, 256, 256),
        hidden_dim: int = 256,
        num_queries: int = 300,
        num_layers: int = 6,
        num_heads: int = 8,
        ffn_dim: int = 1024,
        dropout: float = 0.0,
        act: str = "relu",
        num_points: int | list[int] = 4,
        num_denoising: int = 100,
        label_noise_ratio: float = 0.5,
        box_noise_scale: float = 1.0,
        eval_idx: int = -1,
        reg_max: int = 32,
        reg_scale: float = 4.0,
        up: float = 0.5,
        anchor_eps: float = 1e-2,
        anchor_size: float = 0.05,
    ) -> None:
        super().__init__(num_classes, feat_channels, hidden_dim, num_queries, num_layers, num_denoising,
                         label_noise_ratio, box_noise_scale, eval_idx, anchor_eps, anchor_size)
        self.reg_max, self.scale = reg_max, float(reg_scale)
        # fixed (not trained) but parameters, as officially: state-dict keys and parameter counts agree
        self.up = nn.Parameter(torch.tensor([float(up)]), requires_grad=False)
        self.reg_scale = nn.Parameter(torch.tensor([float(reg_scale)]), requires_grad=False)
        self.register_buffer("project", weighting_function(reg_max, up, reg_scale), persistent=False)

        self.input_proj = nn.ModuleList(
            nn.Identity() if c == hidden_dim else ConvNormLayer(c, hidden_dim, 1) for c in feat_channels
        )
        layer = DFINEDecoderLayer(hidden_dim, num_heads, ffn_dim, dropout, act, self.num_levels, num_points)
        self.decoder = DFINELayers(layer, num_layers, reg_max)
        self.denoising_class_embed = nn.Embedding(num_classes + 1, hidden_dim, padding_idx=num_classes)
        self.query_pos_head = MLP(4, 2 * hidden_dim, hidden_dim, num_layers=2)
        self.enc_output = nn.Sequential(
            OrderedDict(proj=nn.Linear(hidden_dim, hidden_dim), norm=nn.LayerNorm(hidden_dim))
        )
        self.enc_score_head = nn.Linear(hidden_dim, num_classes)
        self.enc_bbox_head = MLP(hidden_dim, hidden_dim, 4, num_layers=3)
        self.dec_score_head = nn.ModuleList(nn.Linear(hidden_dim, num_classes) for _ in range(num_layers))
        self.pre_bbox_head = MLP(hidden_dim, hidden_dim, 4, num_layers=3)
        self.dec_bbox_head = nn.ModuleList(
            MLP(hidden_dim, hidden_dim, 4 * (reg_max + 1), num_layers=3) for _ in range(num_layers)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """As RT-DETR's, and layer 0's plain box head starts at zero like the other box heads."""
        super().reset_parameters()
        nn.init.zeros_(self.pre_bbox_head.layers[-1].weight)
        nn.init.zeros_(self.pre_bbox_head.layers[-1].bias)

    def select_queries(
        self, memory: torch.Tensor, spatial_shapes: list[tuple[int, int]]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Top-k encoder proposals (box head on the selected tokens only).

        Returns: content [B, Q, C] (detached), ref_unact [B, Q, 4] (detached logits),
        enc_logits [B, Q, num_classes], enc_boxes [B, Q, 4] (sigmoid, with gradient).
        """
        anchors, valid = self.anchors(spatial_shapes, memory.device, memory.dtype)
        output_memory = self.enc_output(memory * valid.to(memory.dtype))
        logits = self.enc_score_head(output_memory)
        k = min(self.num_queries, memory.shape[1])
        index = logits.max(-1).values.topk(k, dim=1).indices[..., None]  # [B, Q, 1]
        content = output_memory.gather(1, index.expand(-1, -1, output_memory.shape[-1]))
        top_anchors = anchors.expand(memory.shape[0], -1, -1).gather(1, index.expand(-1, -1, 4))
        ref_unact = self.enc_bbox_head(content) + top_anchors
        enc_logits = logits.gather(1, index.expand(-1, -1, logits.shape[-1]))
        return content.detach(), ref_unact.detach(), enc_logits, ref_unact.sigmoid()

    def forward(self, feats: list[torch.Tensor], targets: list[dict] | None = None) -> dict:
        memory, shapes = self.flatten_memory(feats)
        content, ref_unact, enc_logits, enc_boxes = self.select_queries(memory, shapes)
        content, ref_unact, attn_mask, dn_meta = self.add_denoising_queries(content, ref_unact, targets)
        layers = self.decode(content, ref_unact, memory, shapes, attn_mask)
        if not self.training:
            return {"pred_logits": layers["logits"][-1], "pred_boxes": layers["boxes"][-1]}

        d = dn_meta["dn_num_split"][0] if dn_meta is not None else 0  # denoising queries come first
        sets, pre = self.layer_outputs(layers, slice(d, None))
        out = {**sets[-1], "aux_outputs": sets[:-1], "pre_outputs": pre,
               "enc_outputs": {"pred_logits": enc_logits, "pred_boxes": enc_boxes},
               "project": self.project, "reg_scale": self.scale}
        if dn_meta is not None:
            out["dn_outputs"], out["dn_pre_outputs"] = self.layer_outputs(layers, slice(0, d))
            out["dn_meta"] = dn_meta
        return out

    @staticmethod
    def layer_outputs(layers: dict, queries: slice) -> tuple[list[dict], dict]:
        """The output dicts of each layer ("pred_logits", "pred_boxes", "pred_corners", "ref_points") and of
        layer 0's box head ("pred_logits", "pred_boxes"), for the queries in `queries` (dim 1) of `decode`'s lists."""
        sets = [
            {"pred_logits": lg[:, queries], "pred_boxes": bx[:, queries], "pred_corners": cr[:, queries],
             "ref_points": rf[:, queries]}
            for lg, bx, cr, rf in zip(layers["logits"], layers["boxes"], layers["corners"], layers["refs"], strict=True)
        ]
        pre = {"pred_logits": layers["pre_logits"][:, queries], "pred_boxes": layers["pre_boxes"][:, queries]}
        return sets, pre

    def decode(
        self,
        tgt: torch.Tensor,
        ref_unact: torch.Tensor,
        memory: torch.Tensor,
        spatial_shapes: list[tuple[int, int]],
        attn_mask: torch.Tensor | None,
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Run the layers with FDR.

        Returns lists over layers (all N in training, only eval_idx at eval): "logits" [B, Q, C],
        "boxes" [B, Q, 4], "corners" [B, Q, 4 * (R + 1)], "refs" [B, Q, 4]; and layer 0's
        "pre_logits" [B, Q, C], "pre_boxes" [B, Q, 4] in training.
        """
        out: dict = {"logits": [], "boxes": [], "corners": [], "refs": []}
        ref_detached = ref_unact.sigmoid()
        tgt_detached = corners_prev = 0
        for i, layer in enumerate(self.decoder.layers):
            query_pos = self.query_pos_head(ref_detached).clamp(-10, 10)
            tgt = layer(tgt, ref_detached[:, :, None], memory, spatial_shapes, query_pos, attn_mask)
            if i == 0:
                pre_boxes = (self.pre_bbox_head(tgt) + inverse_sigmoid(ref_detached)).sigmoid()
                if self.training:
                    out["pre_logits"], out["pre_boxes"] = self.dec_score_head[0](tgt), pre_boxes
                ref_initial = pre_boxes.detach()
            corners = self.dec_bbox_head[i](tgt + tgt_detached) + corners_prev
            # boxes in fp32 under autocast: the edge offsets are fine corrections that bf16 would round away
            with torch.autocast(corners.device.type, enabled=False):
                boxes = distance_to_box(ref_initial.float(), integral(corners.float(), self.project), self.scale)
            if self.training or i == self.eval_idx:
                logits = self.decoder.lqe_layers[i](self.dec_score_head[i](tgt), corners)
                for key, value in (("logits", logits), ("boxes", boxes), ("corners", corners), ("refs", ref_initial)):
                    out[key].append(value)
                if not self.training:
                    break
            corners_prev = corners
            ref_detached = boxes.detach()
            tgt_detached = tgt.detach()
        return out
