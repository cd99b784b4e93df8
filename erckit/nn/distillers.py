"""Classic knowledge distillation (Hinton et al., 2015).

    loss = T^2 * KL(softmax(z_t / T) || softmax(z_s / T)),  averaged over rows (batchmean)

The T^2 factor keeps gradient magnitudes comparable across temperatures.
Computed in float32 whatever the autocast dtype.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..components import Distiller, ModalityOutput
from ..errors import ErckitError


class KLDistill(Distiller):
    def __init__(self, temperature: float):
        super().__init__()
        if temperature <= 0:
            raise ErckitError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, student: ModalityOutput, teacher: ModalityOutput) -> Tensor:  # type: ignore[override]
        """student/teacher logits [B, C] -> scalar."""
        T = self.temperature
        log_p_s = F.log_softmax(student.logits.float() / T, dim=1)
        p_t = F.softmax(teacher.logits.float() / T, dim=1)
        return T * T * F.kl_div(log_p_s, p_t, reduction="batchmean")
