"""`neo-weights import`: official RT-DETR checkpoints (reference names and shapes, random values) -> neo
checkpoints, end to end through the console script; the registry's official COCO entries."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from neo.storage.registry import Registry
from tests.official_checkpoints import REFERENCE, official_from_net, official_state_dict
from tests.support.commands import run_cli, run_command

R18_FILE = "rtdetr_r18vd_dec3_6x_coco_from_paddle.pth"
pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason="reference key lists not available")


def _import(*args: str, cwd: Path, in_process: bool = False) -> subprocess.CompletedProcess:
    """``neo-weights import ARGS`` as a new process, or with ``in_process`` its entry point in this one."""
    return (run_cli if in_process else run_command)("neo-weights", "--bucket", str(cwd / "bucket"), "--cache-dir", str(cwd / "cache"), "import",
                       *args, cwd=cwd, timeout=120, NEO_OFFLINE="0")


def test_import_registry_name_from_the_bucket_prefers_ema(tmp_path: Path) -> None:
    """`rtdetr/rtdetr_r18vd_6x_coco` resolves from a pre-seeded bucket; ema.module wins over model."""
    ema, raw = official_state_dict("rtdetr_r18vd_v1", seed=1), official_state_dict("rtdetr_r18vd_v1", seed=2)
    seeded = tmp_path / "bucket/models/pretrained/rtdetr" / R18_FILE
    seeded.parent.mkdir(parents=True)
    torch.save({"model": raw, "ema": {"module": ema, "updates": 1000}}, seeded)
    result = _import("rtdetr/rtdetr_r18vd_6x_coco", "--out", "r18.ckpt", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert f"source: rtdetr/rtdetr_r18vd_6x_coco -> {tmp_path}/cache/models/pretrained/rtdetr/{R18_FILE} (ema.module)" in out
    assert "RT-DETR v1, preset rtdetr_r18, 80 classes, 3 decoder layers, 20,184,464 parameters" in out
    assert "mapped: 533 tensors, strict (no missing or unexpected keys): backbone 138, decoder 125, encoder 270" in out
    assert "renamed: 0\ndropped: 0\n" in out

    ckpt = torch.load(tmp_path / "r18.ckpt", map_location="cpu", weights_only=True)
    net_state = {k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    assert set(net_state) == set(ema)
    assert all(torch.equal(net_state[k], ema[k]) for k in ema)  # the EMA weights, not the raw ones
    hparams = ckpt["hyper_parameters"]
    assert hparams["model"]["net"]["pixel_mean"] is None and hparams["model"]["net"]["pixel_std"] is None
    assert hparams["model"]["name"] == "rtdetr_r18" and hparams["model"]["net"]["num_classes"] == 80
    assert hparams["class_names"][:3] == ["person", "bicycle", "car"] and hparams["label_to_category_id"][-1] == 90
    assert ckpt["neo_import"]["state"] == "ema.module" and ckpt["neo_import"]["source"] == "rtdetr/rtdetr_r18vd_6x_coco"

    from neo.checkpoints.load import load_checkpoint_module  # what neo-eval / neo-predict / neo-export use

    module = load_checkpoint_module(tmp_path / "r18.ckpt")
    assert module.loaded_weights == "ema"
    assert torch.equal(module.net.decoder.dec_score_head[2].weight, ema["decoder.dec_score_head.2.weight"])
    assert torch.allclose(module.net.pixel_scale, torch.full((1, 3, 1, 1), 1 / 255)) and not module.net.pixel_shift.any()


def test_import_v2_file_url_drops_and_reports_size_bound_buffers(tmp_path: Path) -> None:
    """A v2 checkpoint as released (model only) by file:// URL: anchors/valid_mask/num_points_scale dropped
    with the reason, input_proj and enc_output renamed, everything else mapped."""
    v2 = official_state_dict("rtdetrv2_r18vd", seed=3)
    src = tmp_path / "rtdetrv2_r18vd_120e_coco.pth"
    torch.save({"model": v2, "last_epoch": 119}, src)
    result = _import(src.as_uri(), "--out", "v2.ckpt", cwd=tmp_path, in_process=True)  # a process: the test above
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "(model)" in out and "RT-DETR v2, preset rtdetr_r18" in out and "mapped: 533 tensors" in out
    assert "layout: v2 (RT-DETRv2 names as released: encoder.input_proj.<i>.conv/.norm" in out
    assert "renamed: 22\n" in out and "  encoder.input_proj.0.conv.weight -> encoder.input_proj.0.0.weight\n" in out
    assert "  encoder.input_proj.2.norm.running_var -> encoder.input_proj.2.1.running_var\n" in out
    assert "  decoder.enc_output.proj.weight -> decoder.enc_output.0.weight" in out
    assert "dropped: 5\n  decoder.anchors: size-bound buffer (640x640 anchors)" in out
    assert "  decoder.valid_mask: size-bound buffer (640x640 valid mask)" in out
    assert all(f"decoder.decoder.layers.{i}.cross_attn.num_points_scale: derived buffer" in out for i in range(3))
    state = torch.load(tmp_path / "v2.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert torch.equal(state["net.decoder.enc_output.0.weight"], v2["decoder.enc_output.proj.weight"])
    assert torch.equal(state["net.decoder.enc_output.1.bias"], v2["decoder.enc_output.norm.bias"])
    assert not any("anchors" in k or "valid_mask" in k for k in state)


def test_import_names_the_variants_and_needs_dsp_stated(tmp_path: Path) -> None:
    """An sp2 file named *dsp*: refused until --variant dsp; then the report's variants line names sp2 (from the
    tensors) and dsp (stated), and the sampling line says where the dsp came from."""
    from neo.models.rtdetr import build_preset

    torch.manual_seed(0)
    net = build_preset("rtdetr_r18", 80, {"net.decoder.num_points": [2, 2, 2]})[0]
    src = tmp_path / "rtdetrv2_r18vd_dsp_3x_coco.pth"
    torch.save({"model": official_from_net(net, "v2")}, src)
    refused = _import(str(src), "--out", "dsp.ckpt", cwd=tmp_path, in_process=True)
    assert refused.returncode == 1 and "--variant dsp" in refused.stderr and not (tmp_path / "dsp.ckpt").exists()
    result = _import(str(src), "--out", "dsp.ckpt", "--variant", "dsp", cwd=tmp_path, in_process=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "\nvariants: sp2, dsp, position: official\n" in result.stdout
    assert "\nsampling: discrete (dsp, stated by --variant)\n" in result.stdout
    plain = tmp_path / "rtdetrv2_r18vd_sp2_120e_coco.pth"
    src.rename(plain)
    result = _import(str(plain), "--out", "sp2.ckpt", cwd=tmp_path, in_process=True)
    assert result.returncode == 0 and "\nvariants: sp2, position: official\n" in result.stdout
    assert "sampling: bilinear (a dsp file has the same tensors: import one with --variant dsp)" in result.stdout


def test_import_takes_dsp_from_the_registry_entry(tmp_path: Path) -> None:
    """A dsp registry name needs no --variant: its entry states it (the file's tensors cannot)."""
    entry = Registry.load().get("rtdetr/rtdetrv2_r18vd_dsp_3x_coco")
    seeded = tmp_path / "bucket/models/pretrained/rtdetr" / entry.file
    seeded.parent.mkdir(parents=True)
    torch.save({"model": official_state_dict("rtdetrv2_r18vd", seed=4)}, seeded)
    result = _import("rtdetr/rtdetrv2_r18vd_dsp_3x_coco", "--out", "dsp.ckpt", cwd=tmp_path, in_process=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "\nvariants: dsp, position: official\n" in result.stdout
    assert "\nsampling: discrete (dsp, stated by the registry entry)\n" in result.stdout
    ckpt = torch.load(tmp_path / "dsp.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["model"]["net"]["decoder"]["sampling"] == "discrete"
    assert ckpt["neo_import"]["variants"] == ["dsp", "position: official"]


def test_import_fails_on_an_unmapped_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from neo.cli.weights import main

    official = official_state_dict("rtdetr_r18vd_v1")
    official["decoder.extra_head.weight"] = torch.zeros(4, 256)
    src = tmp_path / "odd.pth"
    torch.save({"model": official}, src)
    code = main(["--bucket", "", "--cache-dir", str(tmp_path / "cache"), "import", str(src),
                 "--out", str(tmp_path / "odd.ckpt")])
    err = capsys.readouterr().err
    assert code == 1 and "1 unexpected key (decoder.extra_head.weight)" in err and str(src) in err
    assert not (tmp_path / "odd.ckpt").exists()


def test_registry_lists_the_official_coco_checkpoints() -> None:
    from neo.checkpoints.official import CONVERTIBLE_PRESETS

    registry = Registry.load()
    coco = {n: registry.get(n) for n in registry.names("rtdetr") if n.endswith(("_coco", "_objects365"))}
    expected = {f"rtdetr/rtdetr_{m}" for m in ("r18vd_6x_coco", "r34vd_6x_coco", "r50vd_m_6x_coco", "r50vd_6x_coco",
                                              "r101vd_6x_coco", "r18vd_5x_coco_objects365",
                                              "r50vd_2x_coco_objects365")}
    expected |= {f"rtdetr/rtdetrv2_{m}" for m in ("r18vd_120e_coco", "r34vd_120e_coco", "r50vd_m_7x_coco",
                                                 "r50vd_6x_coco", "r101vd_6x_coco")}
    expected |= {f"rtdetr/rtdetrv2_hgnetv2_{size}_6x_coco" for size in "lxh"}
    expected |= {f"rtdetr/rtdetrv2_r18vd_sp{n}_120e_coco" for n in (1, 2, 3)}
    dsp = {f"rtdetr/rtdetrv2_{m}" for m in ("r18vd_dsp_3x_coco", "r34vd_dsp_1x_coco", "r50vd_m_dsp_3x_coco",
                                           "r50vd_dsp_1x_coco")}
    assert set(coco) == expected | dsp
    assert {n for n, e in coco.items() if e.extra.get("variant") == "dsp"} == dsp  # the import's only source
    assert all(e.extra.get("variant") in (None, "dsp") for e in coco.values())
    assert {n: e.extra["num_points"] for n, e in coco.items() if "num_points" in e.extra} == {
        f"rtdetr/rtdetrv2_r18vd_sp{n}_120e_coco": [n] * 3 for n in (1, 2, 3)}
    assert {coco[f"rtdetr/rtdetrv2_hgnetv2_{s}_6x_coco"].extra["preset"] for s in "lxh"} == {
        "rtdetr_hgnetv2_l", "rtdetr_hgnetv2_x", "rtdetr_hgnetv2_h"}
    for entry in coco.values():
        url = entry.origin["url"]
        assert url.startswith("https://github.com/lyuwenyu/storage/releases/download/v0.")
        assert url.rsplit("/", 1)[1] == entry.file and entry.task == "detection"
        assert entry.extra["preset"] in CONVERTIBLE_PRESETS and entry.extra["version"] in ("v1", "v2")
        assert entry.sha256 is None and entry.size is None  # not published upstream
    assert coco["rtdetr/rtdetr_r50vd_6x_coco"].origin["url"].endswith("/v0.1/rtdetr_r50vd_6x_coco_from_paddle.pth")
    assert coco["rtdetr/rtdetrv2_r50vd_6x_coco"].origin["url"].endswith("/v0.1/rtdetrv2_r50vd_6x_coco_ema.pth")
