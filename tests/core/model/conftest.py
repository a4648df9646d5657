"""A tiny MTMR-Net checkpoint the model tests load (random weights, 32 px input)."""

import pytest
import torch

from core.model.checkpoints import save_checkpoint
from core.model.patches import PatchConfig
from models.mtmr import MTMRNet, MTMRNetConfig


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    model = MTMRNet(MTMRNetConfig(depth=18, width=8, input_size=32))
    card = {
        "name": "tiny",
        "version": "0",
        "trained_on": "nothing",
        "preprocessing": PatchConfig(size=32).to_dict(),
    }
    save_checkpoint(tmp_path / "m.safetensors", model, card)
    return tmp_path / "m.safetensors"
