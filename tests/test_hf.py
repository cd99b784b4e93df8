"""erckit.hf.load_backbone: config overrides on pretrained weights and config tables."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from erckit.errors import ErckitError
from erckit.hf import build_config, load_backbone, rebuild_from_assets, save_backbone_config

TINY_AUDIO = dict(model_type="data2vec-audio", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
                  num_conv_pos_embeddings=3, conv_pos_kernel_size=5, num_conv_pos_embedding_groups=2)


@pytest.fixture
def pretrained(tmp_path: Path) -> Path:
    """A tiny data2vec-audio saved with save_pretrained: loaded back as ``pretrained``, the real path."""
    from transformers import AutoModel

    torch.manual_seed(0)
    AutoModel.from_config(build_config(TINY_AUDIO)).save_pretrained(tmp_path / "pretrained")
    return tmp_path / "pretrained"


def test_overrides_reach_a_pretrained_model_and_keep_its_weights(pretrained: Path) -> None:
    plain = load_backbone("AutoModel", str(pretrained))
    changed = load_backbone("AutoModel", str(pretrained), overrides={"mask_time_length": 3, "mask_time_prob": 0.2})
    assert plain.config.mask_time_length == 10  # data2vec-audio's default
    assert (changed.config.mask_time_length, changed.config.mask_time_prob) == (3, 0.2)
    for (name, a), (_, b) in zip(plain.state_dict().items(), changed.state_dict().items()):
        assert torch.equal(a, b), name


def test_overrides_merge_into_a_config_table() -> None:
    model = load_backbone("AutoModel", "unused", config=TINY_AUDIO, overrides={"mask_time_length": 3})
    assert model.config.mask_time_length == 3 and model.config.hidden_size == 32


@pytest.mark.parametrize("where", ["pretrained", "config"])
def test_an_override_the_config_lacks_is_an_error_naming_it(pretrained: Path, where: str) -> None:
    kwargs = {"config": TINY_AUDIO} if where == "config" else {}
    with pytest.raises(ErckitError, match="override 'mask_time_lenght': a 'data2vec-audio' config has no such setting"):
        load_backbone("AutoModel", str(pretrained), overrides={"mask_time_lenght": 3}, **kwargs)


def test_saved_assets_keep_the_overridden_config(pretrained: Path, tmp_path: Path) -> None:
    model = load_backbone("AutoModel", str(pretrained), overrides={"mask_time_length": 3})
    save_backbone_config(model, tmp_path / "assets")
    with rebuild_from_assets(tmp_path / "assets"):
        # The saved config wins; overrides given again change nothing.
        rebuilt = load_backbone("AutoModel", "unused", overrides={"mask_time_length": 7})
    assert rebuilt.config.mask_time_length == 3
