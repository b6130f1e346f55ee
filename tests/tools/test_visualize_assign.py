"""tools/visualize_assign.py: the pictures of the head's label assignment, SimOTA (YOLOX) and ATSS (YOLOX*), on
a tiny generated dataset. What the tool draws is compared with what the head itself returned in that forward."""
import functools
import json

import cv2
import numpy as np
import pytest
import torch

from cli_helpers import cli_in_process, load_tool, run_tool, write_exp

from yolox.models import YOLOXHead

# 96 px inputs are drawn 8x (800 px target side), with the 330 px legend beside them
PICTURE_SHAPE = (768, 768 + 330, 3)


@pytest.fixture(scope="module")
def exps(tiny_coco, tiny_lvis, tmp_path_factory):
    """An upstream YOLOX experiment (SimOTA) and a YOLOX* one (2 anchors / location, ATSS), each with a saved
    checkpoint of its initial weights."""
    from yolox.exp import get_exp

    work = tmp_path_factory.mktemp("assign")
    files = {"simota": write_exp(work / "yolox.py", tiny_coco, work / "out"),
             "atss": write_exp(work / "star.py", tiny_lvis, work / "out", fmt="lvis",
                               extra='self.use_yolox_star("fl")')}
    ckpts = {}
    for kind, path in files.items():
        torch.manual_seed(1)
        ckpts[kind] = work / f"{kind}.pth"
        torch.save({"model": get_exp(path).get_model().state_dict()}, ckpts[kind])
    return files, ckpts, work


class HeadRecorder:
    """What the head's target method returned in the tool's assignment (the one the training losses use:
    tests/models/test_yolo_head.py checks that :meth:`YOLOXHead.assign` gives the training forward's)."""

    def __init__(self, monkeypatch):
        self.targets = []
        for name in ("_simota_targets", "_atss_targets"):
            monkeypatch.setattr(YOLOXHead, name, self._wrap(name, getattr(YOLOXHead, name)))

    def _wrap(self, name, method):
        @functools.wraps(method)
        def recorded(head, *args, **kwargs):
            out = method(head, *args, **kwargs)
            self.targets.append((name, args, out))
            return out

        return recorded


@pytest.mark.parametrize("supervisor", ["simota", "atss"])
def test_the_pictures_show_the_heads_assignment(exps, supervisor, monkeypatch):
    files, ckpts, work = exps
    out = work / f"vis_{supervisor}"
    recorder = HeadRecorder(monkeypatch)
    result = cli_in_process("visualize_assign", ["-f", files[supervisor], "-c", ckpts[supervisor], "-d", "1", "-b", "2",
                                                 "--max-batch", "1", "--device", "cpu", "--output-dir", out])
    assert result.code == 0 and not result.errors and not result.warnings, (result.errors, result.warnings)

    # one assignment of the batch, by the experiment's supervisor
    ((name, args, (fg, gt_boxes, gt_classes, ious, gt_rows)),) = recorder.targets
    assert name == f"_{supervisor}_targets"
    labels = args[-1]
    num_fg = int(fg.sum())
    assert num_fg > 0

    drawn = [json.loads((out / f"assign_vis_0_{i}.json").read_text()) for i in range(2)]
    assert sum(len(d["positives"]) for d in drawn) == num_fg
    order = 0  # the head's targets follow fg.nonzero(): image by image, anchors in increasing order
    head_strides = [8, 16, 32]
    for b, picture in enumerate(drawn):
        assert picture["supervisor"] == supervisor and picture["input_size"] == [96, 96]
        image = cv2.imread(str(out / f"assign_vis_0_{b}.png"))
        assert image.shape == PICTURE_SHAPE
        valid = (labels[b, :, 3] > 0) & (labels[b, :, 4] > 0)
        np.testing.assert_allclose([gt["box"] for gt in picture["gts"]], labels[b][valid][:, 1:5].numpy(), rtol=0,
                                   atol=1e-5)
        assert [p["anchor"] for p in picture["positives"]] == fg[b].nonzero().squeeze(1).tolist()
        for p in picture["positives"]:
            gt = picture["gts"][p["gt"]]
            assert gt["row"] == int(gt_rows[order])
            np.testing.assert_allclose(gt["box"], gt_boxes[order].numpy(), rtol=0, atol=1e-5)
            assert gt["class"] == int(gt_classes[order])
            assert p["iou"] == pytest.approx(float(ious[order]), abs=1e-6)
            assert p["stride"] == head_strides[p["level"]]
            if supervisor == "atss":
                x1, y1, x2, y2 = p["anchor_box"]
                assert x2 - x1 == y2 - y1 == p["stride"] * (3, 4)[p["anchor_in_location"]]
                assert [(x1 + x2) / 2, (y1 + y2) / 2] == p["center"]
            else:
                assert p["anchor_in_location"] == 0 and "anchor_box" not in p
            order += 1
        # the marks have the legend's colours: exactly the levels (SimOTA) or anchor indices (ATSS) that have
        # positives appear in the picture (the lightened photo has none of these saturated colours)
        tool = load_tool("visualize_assign")
        photo = image[:, :768]
        if supervisor == "simota":
            colors, keys = tool.LEVEL_COLORS, {p["level"] for p in picture["positives"]}
        else:
            colors, keys = tool.ANCHOR_COLORS, {p["anchor_in_location"] for p in picture["positives"]}
        shown = {k for k in range(3) if (photo == np.array(colors[k], dtype=np.uint8)).all(-1).any()}
        assert shown == keys
    assert order == num_fg
    if supervisor == "atss":  # both anchors of a location take part
        assert {p["anchor_in_location"] for d in drawn for p in d["positives"]} == {0, 1}


def test_the_command_line_writes_to_the_runs_vis_folder_and_refuses_several_processes(exps):
    files, _, work = exps
    proc = run_tool("tools/visualize_assign.py", "-f", files["atss"], "-b", "2", "--device", "cpu")
    assert "no checkpoint given (-c)" in proc.stderr
    pictures = sorted(p.name for p in (work / "out" / "tiny" / "vis").glob("assign_vis_*.png"))
    assert pictures == ["assign_vis_0_0.png", "assign_vis_0_1.png"]
    result = cli_in_process("visualize_assign", ["-f", files["atss"], "-d", "2", "--device", "cpu"])
    assert result.code == 2 and result.errors == ["visualize_assign.py runs in one process: -d 1 (got -d 2)"]
