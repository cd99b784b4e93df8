"""``OnnxModel``: an ``erckit export`` directory, ready for ``erckit.predict`` on ONNX Runtime.

It offers what the inference engine reads from an ``ERCModel`` (``encoders`` for featurize and
collate, ``labels``, ``anchor``, ``use_fuser``, ``config``, ``encode``, ``fuse``), so
``predict``, ``predict_with``, ``predict_stream`` and a ``Predictor`` take it unchanged: same
batching, context, missing-media path and result objects. A server holds one ``OnnxModel`` (or a
``Predictor`` over it) as it would hold an ``ERCModel``.

The encoders are rebuilt from ``config.json`` and their assets for their Python preprocessing
only: their parameters are released straight away (the weights live in the graphs), buffers
that preprocessing may use (mel filter banks) are kept. So torch is still needed at run time,
for featurize and collate; the forward passes run in ONNX Runtime, on the CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch
from torch import nn

from ..components import Features, ModalityOutput
from ..errors import ModelLoadError, UsageError
from ..modelconfig import ConfigBacked
from .manifest import read_manifest, require

if TYPE_CHECKING:
    from ..data.types import Dialogue
    from ..modelconfig import SavedModelConfig


class OnnxModel(ConfigBacked, nn.Module):
    """The exported graphs + the encoders' preprocessing, keyed like the ``ERCModel`` they came from."""

    def __init__(self, encoders: Mapping[str, Any], sessions: Mapping[str, Any], fuser: Any, config: "SavedModelConfig", precision: str):
        super().__init__()
        self.encoders = nn.ModuleDict(dict(encoders))
        self.sessions = dict(sessions)
        self.fuser = fuser  # the fuser's ONNX Runtime session, or None
        self.config = config
        self.precision = precision
        self.inputs = {name: [i.name for i in session.get_inputs()] for name, session in self.sessions.items()}
        self.fuser_inputs = [i.name for i in fuser.get_inputs()] if fuser is not None else []

    @property
    def use_fuser(self) -> bool:
        return self.config.use_fuser and self.fuser is not None

    def to(self, *args: Any, **kwargs: Any) -> "OnnxModel":  # type: ignore[override]
        device = args[0] if args else kwargs.get("device")
        if device is not None and torch.device(device).type != "cpu":
            raise UsageError(f"the onnx backend runs on the CPU (ONNX Runtime's CPU provider), not on {device}")
        return self

    def encode(self, name: str, features: Features, present: torch.Tensor | None = None) -> ModalityOutput:
        feeds = {key: features[key].detach().cpu().numpy() for key in self.inputs[name]}
        embedding, logits = self.sessions[name].run(None, feeds)
        return ModalityOutput(torch.from_numpy(embedding), torch.from_numpy(logits), present)

    def fuse(self, outputs: Mapping[str, ModalityOutput]) -> torch.Tensor:
        if not self.use_fuser:
            return outputs[self.anchor].logits
        feeds = {}
        for name, output in outputs.items():
            feeds[f"{name}__embedding"] = output.embedding.numpy()
            feeds[f"{name}__logits"] = output.logits.numpy()
            feeds[f"{name}__present"] = output.present().numpy()
        (logits,) = self.fuser.run(None, {key: feeds[key] for key in self.fuser_inputs})
        return torch.from_numpy(logits)

    def predict(self, dialogues: Sequence["Dialogue"], **options: Any) -> list:
        """As ``ERCModel.predict``; ``precision`` is the export's (fp32 or int8), so only fp32 compute is accepted."""
        from ..predict import predict

        if options.get("precision", "fp32") != "fp32":
            raise UsageError(f"the onnx backend computes in the export's own precision ({self.precision}); drop --precision")
        return predict(self, dialogues, **options)  # type: ignore[arg-type]

    @classmethod
    def load(cls, directory: str | Path, threads: int | None = None) -> "OnnxModel":
        """Load an export directory: every checksum checked, the encoders' preprocessing rebuilt, the graphs opened."""
        from .. import modeldir
        from ..model import ERCModel
        from ..modelconfig import read_model_config
        from .graphs import session_for

        require("onnxruntime")
        root = Path(directory)
        if not root.is_dir():
            raise ModelLoadError(f"ONNX export directory {root} does not exist")
        manifest = read_manifest(root)
        config_path = root / "config.json"
        config = read_model_config(modeldir.read_json(config_path, root), config_path)
        graphs = manifest.get("encoders")
        names = list(config.encoders) if config.use_fuser and config.fuser is not None else [config.anchor]
        if not isinstance(graphs, dict) or sorted(graphs) != sorted(names):
            raise ModelLoadError(f"{root / 'manifest.json'}: 'encoders' must name the graphs of {', '.join(names)}")
        for name in config.encoders:
            modeldir.check_assets(root, name, f"{config_path}: encoders")
        built = ERCModel.from_config(config, assets=root)
        encoders = {name: built.encoders[name] for name in names}
        for encoder in encoders.values():
            for parameter in encoder.parameters():  # the weights live in the graphs
                parameter.data = torch.empty(0, dtype=parameter.dtype)
        del built
        sessions = {name: session_for(_graph(root, graphs[name], name), threads) for name in names}
        fuser = None
        if config.use_fuser and config.fuser is not None:
            if not isinstance(manifest.get("fuser"), dict):
                raise ModelLoadError(f"{root / 'manifest.json'}: the config uses a fuser but the export has no fuser graph")
            fuser = session_for(_graph(root, manifest["fuser"], "fuser"), threads)
        model = cls(encoders, sessions, fuser, config, manifest["precision"])
        return model.eval()


def _graph(root: Path, entry: Any, name: str) -> Path:
    from .. import modeldir

    graph = entry.get("graph") if isinstance(entry, dict) else None
    if not isinstance(graph, str):
        raise ModelLoadError(f"{root / 'manifest.json'}: no graph file for {name!r}")
    parts = graph.split("/")
    for part in parts:
        modeldir.plain_name(part, f"{root / 'manifest.json'}: {name}")
    return modeldir.check_regular(root.joinpath(*parts), root)


__all__ = ["OnnxModel"]
