"""Where the outputs of eval / train / demo go (-expn), --fp16 on a CPU, and eval's --test detections file."""
import json
import shutil
from pathlib import Path

from cli_helpers import cli_in_process, load_tool, run_tool, write_exp


def test_experiment_name_holds_every_output_of_an_evaluation(tiny_lvis, tmp_path):
    exp_file = write_exp(tmp_path / "exp.py", tiny_lvis, tmp_path / "out", fmt="lvis")
    proc = run_tool("tools/eval.py", "-f", exp_file, "-expn", "renamed", "-b", "2", "-d", "1", "--device", "cpu",
                    "--fp16")
    renamed = tmp_path / "out" / "renamed"
    assert (renamed / "lvis_per_category_ap.csv").is_file() and (renamed / "val_log.txt").is_file()
    assert not (tmp_path / "out" / "tiny").exists()
    assert "--fp16 needs CUDA; evaluating in float32 on the CPU" in proc.stderr


def test_training_experiment_name_reaches_the_evaluator(tiny_lvis, tmp_path):
    exp_file = write_exp(tmp_path / "exp.py", tiny_lvis, tmp_path / "out", fmt="lvis")
    train = load_tool("train")
    exp = train.build_exp(train.make_parser().parse_args(["-f", exp_file, "-expn", "renamed"]))
    assert exp.exp_name == "renamed"
    assert exp.get_evaluator(2, False).output_dir == str(tmp_path / "out" / "renamed")


def test_demo_warns_that_fp16_needs_cuda(tiny_coco, tmp_path):
    exp_file = write_exp(tmp_path / "exp.py", tiny_coco, tmp_path / "out")
    image = sorted(Path(tiny_coco["val_dir"]).glob("*.jpg"))[0]
    result = cli_in_process("demo", ["image", "-f", exp_file, "--path", image, "--device", "cpu", "--fp16",
                                     "-expn", "demo_run", "--save_result"])
    assert result.code == 0 and not result.errors
    assert "--fp16 needs CUDA; running in float32 on the CPU" in result.warnings
    assert list((tmp_path / "out" / "demo_run" / "vis_res").rglob(image.name))


def test_test_split_detections_are_written_for_the_evaluation_server(tiny_coco, tmp_path):
    # a test split as COCO ships it: images in test2017/, an image-info json without annotations
    root = tmp_path / "coco"
    shutil.copytree(tiny_coco["root"], root)
    shutil.copytree(root / "val2017", root / "test2017")
    info = json.loads(Path(tiny_coco["val_json"]).read_text())
    info.pop("annotations")
    (root / "annotations" / "image_info_test.json").write_text(json.dumps(info))
    data = dict(tiny_coco, root=str(root))
    exp_file = write_exp(tmp_path / "exp.py", data, tmp_path / "out", extra="self.test_ann = 'image_info_test.json'")
    # seeded: the random weights' scores sit near the threshold, so an unseeded run sometimes keeps none
    proc = run_tool("tools/eval.py", "-f", exp_file, "-b", "2", "-d", "1", "--device", "cpu", "--test", "--seed", "0",
                    "test_conf", "0.0001")
    path = tmp_path / "out" / "tiny" / "detections_image_info_test.json"
    assert f"test-split detections written to {path}" in proc.stderr
    results = json.loads(path.read_text())
    assert results and {r["image_id"] for r in results} <= {img["id"] for img in info["images"]}
    category_ids = {c["id"] for c in info["categories"]}
    for r in results:
        assert set(r) == {"image_id", "category_id", "bbox", "score"}
        assert r["category_id"] in category_ids and len(r["bbox"]) == 4 and 0 < r["score"] <= 1
    assert "Average Precision" not in proc.stderr  # nothing was scored

