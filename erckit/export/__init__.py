"""ONNX deployment: ``erckit export`` writes a model directory as ONNX graphs, ``OnnxModel`` runs them.

* ``erckit.export.graphs.export_model``: one ONNX graph per encoder used for prediction (inputs:
  its collated feature tensors, dynamic batch and length axes) plus one for the fuser, each
  checked against PyTorch on a second batch of other shapes; optionally int8 (ONNX Runtime's
  dynamic quantization of the linear layers).
* ``erckit.export.runtime.OnnxModel``: the exported directory loaded for ``erckit.predict``
  (same batching, context and output formats): featurize/collate stay the encoders' own Python
  code, so preprocessing is identical; only the forward passes run in ONNX Runtime.
* ``erckit.export.manifest``: ``manifest.json``, a sha256 for every file, checked on load.

Needs the extra ``erckit[onnx]`` (onnx, onnxruntime; exporting also onnxscript, which
``torch.onnx``'s exporter uses). Nothing here is imported by ``erckit --help``.
"""
