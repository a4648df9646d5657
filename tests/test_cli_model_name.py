"""Issue 21: the model is named one way in predict's output, its card and the app's status bar."""

from __future__ import annotations

import json

import torch

from app.analysis import Analysis
from core.model.checkpoints import model_title, read_card, save_checkpoint
from core.model.patches import PatchConfig
from core.model.store import default_model_path
from main import main
from models.mtmr import MTMRNet, MTMRNetConfig
from tests.dicom_factory import write_series


def test_predict_card_and_status_bar_name_the_model_alike(tmp_path, capsys):
    torch.manual_seed(0)
    card = {
        "name": "tiny",
        "version": "t1",
        "trained_on": "test data",
        "preprocessing": PatchConfig(size=32).to_dict(),
    }
    model = tmp_path / "file-name-differs.safetensors"
    save_checkpoint(model, MTMRNet(MTMRNetConfig(width=8, input_size=32)), card)
    write_series(tmp_path / "study", 6)
    (tmp_path / "m.json").write_text(
        json.dumps({"markers": [{"id": "a", "center_mm": [0, 0, 6], "diameter_mm": 6}]})
    )
    args = ["predict", str(tmp_path / "study"), "--markers", str(tmp_path / "m.json"), "--model", str(model)]
    assert main([*args, "--out", str(tmp_path / "r.json")]) == 0
    title = model_title(read_card(model))
    assert title == "tiny t1"
    assert f"model: {title} - trained on test data" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["model"].startswith(f"{title} - ")
    status = Analysis(model)  # before the model is loaded: what the status bar shows at start-up
    assert status.model_name() == f"Model {title}" and status.short_text().startswith(f"Model {title} ")
    assert title in status.model_text()


def test_the_demo_model_is_named_by_its_card_not_its_file():
    demo = default_model_path()
    title = model_title(read_card(demo))
    assert demo.stem not in title and Analysis(demo).model_name() == f"Model {title}"
