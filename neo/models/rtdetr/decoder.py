"""RT-DETR transformer decoder: query selection from encoder memory, denoising, iterative refinement."""

from __future__ import annotations

import copy

import torch
from torch import nn

from .deformable_attention import MSDeformableAttention
from .denoising import build_denoising_queries
from .layers import MLP, ConvNormLayer, bias_init_with_prob, get_activation, inverse_sigmoid


class TransformerDecoderLayer(nn.Module):
    """Self-attention -> add&LN -> deformable cross-attention -> add&LN -> FFN -> add&LN.

    Subclasses change the cross-attention merge (`merge_cross`) and bound the FFN sum (`ffn_clamp`).
    tgt, query_pos: [B, Q, C]; reference_points: [B, Q, 1, 4]; memory: [B, S, C];
    attn_mask: [Q, Q] bool (True = may not attend) or None -> [B, Q, C]
    """

    ffn_clamp: float | None = None  # bound of the FFN residual sum before norm3 (None: unbounded)

    def __init__(
        self,
        dim: int = 256,
        num_heads: int = 8,
        ffn_dim: int = 1024,
        dropout: float = 0.0,
        act: str = "relu",
        num_levels: int = 3,
        num_points: int | list[int] = 4,
        sampling: str = "bilinear",
    ) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, num_heads, dropout, batch_first=True)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn = MSDeformableAttention(dim, num_heads, num_levels, num_points, sampling=sampling)
        self.dropout2 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.activation = get_activation(act)
        self.dropout3 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.dropout4 = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(dim)

    def forward(
        self,
        tgt: torch.Tensor,
        reference_points: torch.Tensor,
        memory: torch.Tensor,
        spatial_shapes: list[tuple[int, int]],
        query_pos: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        q = k = tgt + query_pos
        attn = self.self_attn(q, k, value=tgt, attn_mask=attn_mask, need_weights=False)[0]
        tgt = self.norm1(tgt + self.dropout1(attn))
        cross = self.cross_attn(tgt + query_pos, reference_points, memory, spatial_shapes)
        tgt = self.merge_cross(tgt, self.dropout2(cross))
        ffn = self.linear2(self.dropout3(self.activation(self.linear1(tgt))))
        out = tgt + self.dropout4(ffn)
        if self.ffn_clamp is not None:
            out = out.clamp(-self.ffn_clamp, self.ffn_clamp)
        return self.norm3(out)

    def merge_cross(self, tgt: torch.Tensor, cross: torch.Tensor) -> torch.Tensor:
        """Residual stream [B, Q, C] and cross-attention output [B, Q, C] -> [B, Q, C]: add & LayerNorm."""
        return self.norm2(tgt + cross)


class TransformerDecoder(nn.Module):
    """A stack of decoder layers (keys `layers.{i}.*`); the heads live in the parent for official names."""

    def __init__(self, layer: TransformerDecoderLayer, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))


class QueryDecoder(nn.Module):
    """What RT-DETR's and D-FINE's decoders share: their settings, the anchor grid, the projected memory,
    the denoising queries and the head initialisation. Subclasses build the modules under the official
    names (`input_proj`, `decoder`, `denoising_class_embed`, `query_pos_head`, `enc_output`, `enc_score_head`,
    `enc_bbox_head`, `dec_score_head`, `dec_bbox_head`) and select and refine the queries.

    Args: as :class:`RTDETRDecoder` (the settings both decoders have).
    """

    def __init__(
        self,
        num_classes: int,
        feat_channels: list[int],
        hidden_dim: int,
        num_queries: int,
        num_layers: int,
        num_denoising: int,
        label_noise_ratio: float,
        box_noise_scale: float,
        eval_idx: int,
        anchor_eps: float,
        anchor_size: float,
    ) -> None:
        super().__init__()
        self.num_classes, self.hidden_dim, self.num_queries = num_classes, hidden_dim, num_queries
        self.num_levels = len(feat_channels)
        self.num_layers = num_layers
        self.eval_idx = eval_idx if eval_idx >= 0 else num_layers + eval_idx
        if not 0 <= self.eval_idx < num_layers:
            raise ValueError(f"eval_idx={eval_idx} is outside the {num_layers} decoder layers")
        self.num_denoising, self.label_noise_ratio, self.box_noise_scale = num_denoising, label_noise_ratio, box_noise_scale
        self.anchor_eps, self.anchor_size = anchor_eps, anchor_size

    def reset_parameters(self) -> None:
        """Class heads at prior 0.01, box heads' last layer at zero, Xavier for the projections."""
        bias = bias_init_with_prob(0.01)
        for head in [self.enc_score_head, *self.dec_score_head]:
            nn.init.constant_(head.bias, bias)
        for mlp in [self.enc_bbox_head, *self.dec_bbox_head]:
            nn.init.zeros_(mlp.layers[-1].weight)
            nn.init.zeros_(mlp.layers[-1].bias)
        nn.init.xavier_uniform_(self.enc_output[0].weight)
        for layer in self.query_pos_head.layers:
            nn.init.xavier_uniform_(layer.weight)
        for proj in self.input_proj:
            if not isinstance(proj, nn.Identity):
                nn.init.xavier_uniform_(proj.conv.weight)

    def anchors(
        self, spatial_shapes: list[tuple[int, int]], device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Anchors from the ACTUAL level sizes.

        Returns: anchors [1, S, 4] in logit space (+inf where invalid), valid_mask [1, S, 1] bool.
        """
        out = []
        for level, (h, w) in enumerate(spatial_shapes):
            y, x = torch.meshgrid(
                torch.arange(h, device=device, dtype=torch.float32),
                torch.arange(w, device=device, dtype=torch.float32),
                indexing="ij",
            )
            size = torch.tensor([w, h], dtype=torch.float32)
            if size.device != device:  # built on the host: an upload that does not wait for the device
                size = size.to(device, non_blocking=True)
            xy = (torch.stack([x, y], -1) + 0.5) / size
            wh = torch.full_like(xy, self.anchor_size * 2.0**level)
            out.append(torch.cat([xy, wh], -1).reshape(1, h * w, 4))
        anchors = torch.cat(out, 1)
        valid = ((anchors > self.anchor_eps) & (anchors < 1 - self.anchor_eps)).all(-1, keepdim=True)
        anchors = torch.log(anchors / (1 - anchors))
        anchors = torch.where(valid, anchors, torch.full_like(anchors, float("inf")))
        return anchors.to(dtype), valid

    def flatten_memory(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """Project and concatenate levels: memory [B, S, hidden], shapes [(H_l, W_l)] (row-major)."""
        if len(feats) != self.num_levels:
            raise ValueError(f"decoder expects {self.num_levels} levels, got {len(feats)}")
        memory, shapes = [], []
        for proj, feat in zip(self.input_proj, feats, strict=True):
            f = proj(feat)
            shapes.append((int(f.shape[2]), int(f.shape[3])))
            memory.append(f.flatten(2).transpose(1, 2))
        return torch.cat(memory, 1), shapes

    def add_denoising_queries(
        self, content: torch.Tensor, ref_unact: torch.Tensor, targets: list[dict] | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, dict | None]:
        """In training with denoising, put the noisy ground-truth queries (`build_denoising_queries`) before
        the selected ones; otherwise pass the queries through.

        content [B, Q, C], ref_unact [B, Q, 4] -> content [B, D + Q, C], ref_unact [B, D + Q, 4],
        attn_mask [D + Q, D + Q] bool or None, dn_meta (D = dn_meta["dn_num_split"][0]) or None.
        """
        if not (self.training and self.num_denoising > 0):
            return content, ref_unact, None, None
        if targets is None:
            raise ValueError("training with denoising needs targets: call model(images, targets)")
        dn_query, dn_ref, attn_mask, dn_meta = build_denoising_queries(
            targets,
            self.num_classes,
            content.shape[1],
            self.denoising_class_embed,
            self.num_denoising,
            self.label_noise_ratio,
            self.box_noise_scale,
        )
        content = torch.cat([dn_query.to(content.dtype), content], 1)
        ref_unact = torch.cat([dn_ref.to(ref_unact.dtype), ref_unact], 1)
        return content, ref_unact, attn_mask, dn_meta


class RTDETRDecoder(QueryDecoder):
    """Query selection + denoising + decoder layers with iterative box refinement.

    Args:
        num_classes: number of classes C.
        feat_channels: channels of the encoder levels (set by RTDETR from the encoder).
        hidden_dim, num_queries, num_layers, num_heads, ffn_dim, dropout, act: decoder settings.
        num_points: deformable points per level (int, or a list per level as in v2).
        sampling: cross-attention sampling, "bilinear" or "discrete" (v2 dsp; see MSDeformableAttention).
        num_denoising, label_noise_ratio, box_noise_scale: contrastive denoising (0 queries disables).
        eval_idx: last layer run at eval (negative counts from the end).
        anchor_eps, anchor_size: anchors valid where all coords are in (eps, 1 - eps); wh = size * 2^level.

    forward(feats: list of [B, feat_channels[l], H_l, W_l], targets) -> dict with
        "pred_logits" [B, Q, C], "pred_boxes" [B, Q, 4] (sigmoid cxcywh); in training also
        "aux_outputs" (list over layers 0..N-2 of {"pred_logits", "pred_boxes"}),
        "enc_outputs" {"pred_logits" [B, Q, C], "pred_boxes" [B, Q, 4]} (encoder top-k proposals),
        "dn_outputs" (list over all N layers of {"pred_logits" [B, D, C], "pred_boxes" [B, D, 4]}) and
        "dn_meta" (see `build_denoising_queries`) when num_denoising > 0.
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
        anchor_eps: float = 1e-2,
        anchor_size: float = 0.05,
        sampling: str = "bilinear",
    ) -> None:
        super().__init__(num_classes, feat_channels, hidden_dim, num_queries, num_layers, num_denoising,
                         label_noise_ratio, box_noise_scale, eval_idx, anchor_eps, anchor_size)
        self.input_proj = nn.ModuleList(ConvNormLayer(c, hidden_dim, 1) for c in feat_channels)
        layer = TransformerDecoderLayer(
            hidden_dim, num_heads, ffn_dim, dropout, act, self.num_levels, num_points, sampling
        )
        self.decoder = TransformerDecoder(layer, num_layers)
        self.denoising_class_embed = nn.Embedding(num_classes + 1, hidden_dim, padding_idx=num_classes)
        self.query_pos_head = MLP(4, 2 * hidden_dim, hidden_dim, num_layers=2)
        self.enc_output = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.LayerNorm(hidden_dim))
        self.enc_score_head = nn.Linear(hidden_dim, num_classes)
        self.enc_bbox_head = MLP(hidden_dim, hidden_dim, 4, num_layers=3)
        self.dec_score_head = nn.ModuleList(nn.Linear(hidden_dim, num_classes) for _ in range(num_layers))
        self.dec_bbox_head = nn.ModuleList(
            MLP(hidden_dim, hidden_dim, 4, num_layers=3) for _ in range(num_layers)
        )
        self.reset_parameters()

    def select_queries(
        self, memory: torch.Tensor, spatial_shapes: list[tuple[int, int]]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Top-k encoder proposals.

        Returns: content [B, Q, C] (detached), ref_unact [B, Q, 4] (detached logits),
        enc_logits [B, Q, num_classes], enc_boxes [B, Q, 4] (sigmoid, with gradient).
        """
        anchors, valid = self.anchors(spatial_shapes, memory.device, memory.dtype)
        memory = memory * valid.to(memory.dtype)
        output_memory = self.enc_output(memory)
        logits = self.enc_score_head(output_memory)
        coords_unact = self.enc_bbox_head(output_memory) + anchors
        k = min(self.num_queries, memory.shape[1])
        index = logits.max(-1).values.topk(k, dim=1).indices  # [B, Q]
        ref_unact = coords_unact.gather(1, index[..., None].expand(-1, -1, 4))
        enc_logits = logits.gather(1, index[..., None].expand(-1, -1, logits.shape[-1]))
        content = output_memory.gather(1, index[..., None].expand(-1, -1, output_memory.shape[-1]))
        return content.detach(), ref_unact.detach(), enc_logits, ref_unact.sigmoid()

    def forward(self, feats: list[torch.Tensor], targets: list[dict] | None = None) -> dict:
        memory, shapes = self.flatten_memory(feats)
        content, ref_unact, enc_logits, enc_boxes = self.select_queries(memory, shapes)
        content, ref_unact, attn_mask, dn_meta = self.add_denoising_queries(content, ref_unact, targets)
        boxes, logits = self.decode(content, ref_unact, memory, shapes, attn_mask)

        if dn_meta is not None:
            dn_boxes, boxes = boxes.split(dn_meta["dn_num_split"], dim=2)
            dn_logits, logits = logits.split(dn_meta["dn_num_split"], dim=2)
        out = {"pred_logits": logits[-1], "pred_boxes": boxes[-1]}
        if self.training:
            out["aux_outputs"] = [
                {"pred_logits": a, "pred_boxes": b} for a, b in zip(logits[:-1], boxes[:-1], strict=True)
            ]
            out["enc_outputs"] = {"pred_logits": enc_logits, "pred_boxes": enc_boxes}
            if dn_meta is not None:
                out["dn_outputs"] = [
                    {"pred_logits": a, "pred_boxes": b} for a, b in zip(dn_logits, dn_boxes, strict=True)
                ]
                out["dn_meta"] = dn_meta
        return out

    def decode(
        self,
        tgt: torch.Tensor,
        ref_unact: torch.Tensor,
        memory: torch.Tensor,
        spatial_shapes: list[tuple[int, int]],
        attn_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the layers with iterative refinement.

        Returns: boxes [L, B, Q, 4], logits [L, B, Q, C]; L = num_layers in training, 1 at eval
        (the output of layer eval_idx).
        """
        boxes, logits = [], []
        ref = ref_unact.sigmoid()
        ref_detached = ref
        for i, layer in enumerate(self.decoder.layers):
            query_pos = self.query_pos_head(ref_detached)
            tgt = layer(tgt, ref_detached[:, :, None], memory, spatial_shapes, query_pos, attn_mask)
            delta = self.dec_bbox_head[i](tgt)
            new_ref = (delta + inverse_sigmoid(ref_detached)).sigmoid()
            if self.training:
                logits.append(self.dec_score_head[i](tgt))
                # "look forward twice": layer i > 0 boxes refine the previous, undetached box
                boxes.append(new_ref if i == 0 else (delta + inverse_sigmoid(ref)).sigmoid())
            elif i == self.eval_idx:
                logits.append(self.dec_score_head[i](tgt))
                boxes.append(new_ref)
                break
            ref = new_ref
            ref_detached = new_ref.detach() if self.training else new_ref
        return torch.stack(boxes), torch.stack(logits)
