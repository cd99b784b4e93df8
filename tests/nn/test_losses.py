"""Built-in objectives against hand computations on a two-row, three-class batch.

The logits are log-probabilities, so softmax gives back the probabilities written
in ``P`` and every expected value below is a formula on those numbers.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from erckit.builtin.training import cross_entropy, focal_loss, weighted_cross_entropy
from erckit.components import ModalityOutput
from erckit.errors import ErckitError
from erckit.nn.losses import balanced_class_weights

P = [[0.5, 0.25, 0.25], [0.2, 0.6, 0.2]]
LABELS = torch.tensor([0, 1])  # so p_y = 0.5 for row 0 and 0.6 for row 1
ln = math.log


def output(logits: torch.Tensor | None = None) -> ModalityOutput:
    logits = torch.tensor(P).log() if logits is None else logits
    return ModalityOutput(embedding=torch.zeros(logits.shape[0], 4), logits=logits)


def test_cross_entropy_is_the_mean_negative_log_probability_of_the_label() -> None:
    loss = cross_entropy(num_classes=3)(output(), LABELS)
    assert loss.item() == pytest.approx(-(ln(0.5) + ln(0.6)) / 2, rel=1e-6)


def test_label_smoothing_spreads_eps_over_all_classes() -> None:
    # row loss = (1 - eps) (-ln p_y) + eps / C * sum_c (-ln p_c), eps = 0.1, C = 3
    row0 = 0.9 * -ln(0.5) + 0.1 / 3 * -(ln(0.5) + ln(0.25) + ln(0.25))
    row1 = 0.9 * -ln(0.6) + 0.1 / 3 * -(ln(0.2) + ln(0.6) + ln(0.2))
    loss = cross_entropy(num_classes=3, label_smoothing=0.1)(output(), LABELS)
    assert loss.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_loss_is_float32_for_half_precision_logits() -> None:
    logits = torch.tensor(P).log().to(torch.bfloat16)
    loss = cross_entropy(num_classes=3)(output(logits), LABELS)
    assert loss.dtype == torch.float32


def test_weighted_cross_entropy_with_given_weights() -> None:
    # weights [1, 2, 3]: rows weigh w_0 = 1 and w_1 = 2; weighted mean = sum w_y (-ln p_y) / sum w_y
    objective = weighted_cross_entropy(num_classes=3, weights=[1.0, 2.0, 3.0])
    loss = objective(output(), LABELS)
    assert loss.item() == pytest.approx((-ln(0.5) - 2 * ln(0.6)) / 3, rel=1e-6)
    expected = F.cross_entropy(torch.tensor(P).log(), LABELS, weight=torch.tensor([1.0, 2.0, 3.0]))
    assert torch.equal(loss, expected)


def test_weighted_cross_entropy_with_label_smoothing_matches_pytorch() -> None:
    weight = torch.tensor([1.0, 2.0, 3.0])
    loss = weighted_cross_entropy(num_classes=3, weights=[1.0, 2.0, 3.0], label_smoothing=0.2)(output(), LABELS)
    expected = F.cross_entropy(torch.tensor(P).log(), LABELS, weight=weight, label_smoothing=0.2)
    assert torch.equal(loss, expected)


def test_balanced_weights_from_class_counts() -> None:
    # counts [3, 1, 0]: N = 4, C = 3; w_c = N / (C * max(count_c, 1)) = [4/9, 4/3, 4/3]
    weights = balanced_class_weights([3, 1, 0])
    assert weights.tolist() == pytest.approx([4 / 9, 4 / 3, 4 / 3])
    assert weights.dtype == torch.float32
    # The float32 formula of the stage option class_weights = true (erckit/train/engine.py), to the bit.
    counts = torch.tensor([3.0, 1.0, 0.0])
    assert torch.equal(weights, counts.sum() / (3 * counts.clamp(min=1)))


def test_balanced_weighted_cross_entropy_uses_the_training_counts() -> None:
    objective = weighted_cross_entropy(num_classes=3, class_counts=[3, 1, 0])
    # rows weigh 4/9 (label 0) and 4/3 (label 1)
    expected = (4 / 9 * -ln(0.5) + 4 / 3 * -ln(0.6)) / (4 / 9 + 4 / 3)
    assert objective(output(), LABELS).item() == pytest.approx(expected, rel=1e-6)


def test_class_weights_are_not_part_of_the_state_dict() -> None:
    """They come from the recipe and the training counts; a checkpoint does not carry them."""
    assert weighted_cross_entropy(num_classes=3, class_counts=[3, 1, 0]).state_dict() == {}


def test_focal_loss_by_hand() -> None:
    # gamma 2: row loss = -(1 - p_y)^2 ln p_y
    expected = (-(0.5**2) * ln(0.5) - 0.4**2 * ln(0.6)) / 2
    loss = focal_loss(num_classes=3, gamma=2.0)(output(), LABELS)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_focal_loss_with_balanced_alpha_normalised_over_the_training_examples() -> None:
    # counts [3, 1, 0]: balanced weights [4/9, 4/3, 4/3]; sum_c count_c w_c = 8/3 for N = 4,
    # so alpha = w * 4 / (8/3) = [2/3, 2, 2] (it averages 1 over the 4 training examples).
    objective = focal_loss(num_classes=3, class_counts=[3, 1, 0], gamma=2.0, alpha="balanced")
    assert objective.alpha.tolist() == pytest.approx([2 / 3, 2.0, 2.0])
    expected = (2 / 3 * -(0.5**2) * ln(0.5) + 2 * -(0.4**2) * ln(0.6)) / 2
    assert objective(output(), LABELS).item() == pytest.approx(expected, rel=1e-6)


def test_focal_loss_with_a_given_alpha_keeps_its_ratios() -> None:
    # alpha [1, 3, 1] with counts [1, 1, 2]: sum count alpha = 6 for N = 4 -> alpha = [2/3, 2, 2/3]
    objective = focal_loss(num_classes=3, class_counts=[1, 1, 2], gamma=1.0, alpha=[1, 3, 1])
    assert objective.alpha.tolist() == pytest.approx([2 / 3, 2.0, 2 / 3])
    expected = (2 / 3 * -0.5 * ln(0.5) + 2 * -0.4 * ln(0.6)) / 2
    assert objective(output(), LABELS).item() == pytest.approx(expected, rel=1e-6)


def test_focal_loss_with_label_smoothing_by_hand() -> None:
    # q = 0.9 one_hot + 0.1 / 3; row loss = sum_c q_c (1 - p_c)^2 (-ln p_c)
    def term(p: float) -> float:
        return (1 - p) ** 2 * -ln(p)

    row0 = (0.9 + 0.1 / 3) * term(0.5) + 0.1 / 3 * (term(0.25) + term(0.25))
    row1 = 0.1 / 3 * term(0.2) + (0.9 + 0.1 / 3) * term(0.6) + 0.1 / 3 * term(0.2)
    loss = focal_loss(num_classes=3, gamma=2.0, label_smoothing=0.1)(output(), LABELS)
    assert loss.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_focal_loss_with_gamma_zero_is_cross_entropy(smoothing: float) -> None:
    torch.manual_seed(0)
    logits, labels = torch.randn(16, 5), torch.randint(0, 5, (16,))
    expected = F.cross_entropy(logits, labels, label_smoothing=smoothing)
    plain = focal_loss(num_classes=5, gamma=0.0, label_smoothing=smoothing)(output(logits), labels)
    assert torch.equal(plain, expected)
    # The general path (alpha given, here uniform) agrees to float32 rounding.
    uniform = focal_loss(num_classes=5, class_counts=[1] * 5, gamma=0.0, alpha=[1.0] * 5, label_smoothing=smoothing)
    assert uniform(output(logits), labels).item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_loss_gradient_is_finite_on_a_certain_row(gamma: float) -> None:
    """p_y rounds to 1 on the first row: (1 - p)^gamma must not turn its gradient into NaN."""
    logits = torch.tensor([[200.0, 0.0, 0.0], [0.0, 1.0, 2.0]], requires_grad=True)
    loss = focal_loss(num_classes=3, gamma=gamma)(output(logits), torch.tensor([0, 2]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("build, message", [
    (lambda: cross_entropy(3, label_smoothing=1.0), r"label_smoothing must be in \[0, 1\)"),
    (lambda: cross_entropy(3, label_smoothing=-0.1), r"label_smoothing must be in \[0, 1\)"),
    (lambda: focal_loss(3, gamma=-1.0), "gamma must be >= 0"),
    (lambda: focal_loss(3, gamma=float("nan")), "gamma must be a finite number"),
    (lambda: weighted_cross_entropy(3, weights=[1.0, 2.0]), "a list of 3 positive numbers"),
    (lambda: weighted_cross_entropy(3, weights=[1.0, 0.0, 2.0]), r"weights\[1\] must be > 0"),
    (lambda: weighted_cross_entropy(3, weights=[1.0, -1.0, 2.0]), r"weights\[1\] must be > 0"),
    (lambda: weighted_cross_entropy(3, weights="Balanced"), "must be 'balanced' or a list of 3"),
    (lambda: weighted_cross_entropy(3), "needs class_counts"),
    (lambda: weighted_cross_entropy(3, class_counts=[0, 0, 0]), "class_counts are all 0"),
    (lambda: weighted_cross_entropy(3, class_counts=[1, 2]), "class_counts must be 3 whole numbers"),
    (lambda: focal_loss(3, alpha=[1.0, 1.0, 1.0]), "needs class_counts for alpha"),
    (lambda: focal_loss(3, class_counts=[1, 1, 1], alpha=[1.0, 1.0]), "alpha must be 'balanced' or a list of 3"),
])
def test_bad_arguments_are_erckit_errors(build, message: str) -> None:
    with pytest.raises(ErckitError, match=message):
        build()
