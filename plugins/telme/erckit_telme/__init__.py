"""TelME (Yun et al., NAACL 2024) as an erckit plugin.

Registers, through erckit's public ``register_components`` hook
(``erckit_telme.plugin``): ``telme.RobertaTeacher.v1``, ``telme.AudioStudent.v1``,
``telme.VisualStudent.v1`` (encoders), ``telme.ResponseKD.v1``,
``telme.FeatureKD.v1`` (distillers) and ``telme.ASF.v1`` (fuser).
Importing this package does not import torch.
"""

__version__ = "0.1.0"
