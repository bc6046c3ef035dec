"""DINO's self-distillation loss with centring and sharpening."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from zoo.training.distributed import all_reduce_mean
from zoo.training.precision import full_precision


class DINOLoss(nn.Module):
    """DINO (Caron et al. 2021, sec. 3.1, alg. 1): the student's distribution over K
    dimensions is trained to match the teacher's,

        "min_theta_s sum_{x in {x1g, x2g}} sum_{x' in V, x' != x} H(P_t(x), P_s(x'))"

    with ``P_s = softmax(g_s(x) / tau_s)`` and the teacher *centred* and *sharpened*:
    ``P_t = softmax((g_t(x) - c) / tau_t)``; "the center c is updated with an exponential
    moving average: c <- m c + (1 - m) mean_i g_t(x_i)". Centring prevents one dimension
    from dominating, sharpening (tau_t < tau_s) prevents the uniform collapse.

    Args:
        out_dim: K. student_temperature: tau_s (0.1). center_momentum: m (0.9).

    Shapes: ``forward(student, teacher, teacher_temperature)`` with ``student`` a list of
    V tensors (N, K) (all crops) and ``teacher`` a list of the global crops' (N, K); each
    teacher crop is paired with every student crop but its own (same list index). Returns
    a scalar; the centre is then updated from the teacher outputs (all ranks' mean).
    """

    center: torch.Tensor

    def __init__(self, out_dim: int, student_temperature: float = 0.1, center_momentum: float = 0.9) -> None:
        super().__init__()
        if out_dim < 1 or student_temperature <= 0 or not 0 <= center_momentum < 1:
            raise ValueError(
                f"invalid DINO loss settings out_dim={out_dim}, student_temperature={student_temperature},"
                f" center_momentum={center_momentum}"
            )
        self.student_temperature = student_temperature
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    def teacher_probabilities(
        self, teacher: torch.Tensor, teacher_temperature: float | torch.Tensor
    ) -> torch.Tensor:
        """Centred, sharpened teacher distribution (N, K)."""
        return F.softmax((teacher.float() - self.center) / teacher_temperature, dim=-1)

    @full_precision
    def forward(
        self,
        student: list[torch.Tensor],
        teacher: list[torch.Tensor],
        teacher_temperature: float | torch.Tensor,
    ) -> torch.Tensor:
        # A tensor (DINO's scheduled buffer) is checked where it is set: a check here would
        # read its value, a graph break under torch.compile.
        if not isinstance(teacher_temperature, torch.Tensor) and teacher_temperature <= 0:
            raise ValueError(f"teacher_temperature must be positive, got {teacher_temperature}")
        if len(student) < 2 or not teacher:
            raise ValueError("DINO needs at least 2 student crops and 1 teacher crop")
        targets = [self.teacher_probabilities(t.detach(), teacher_temperature) for t in teacher]
        log_probs = [F.log_softmax(s.float() / self.student_temperature, dim=-1) for s in student]
        total, pairs = 0.0, 0
        for ti, target in enumerate(targets):
            for si, log_p in enumerate(log_probs):
                if si == ti:
                    continue  # the teacher and student never see the same crop
                total = total + (-target * log_p).sum(-1).mean()
                pairs += 1
        self.update_center(torch.cat([t.detach() for t in teacher]))
        return total / pairs

    @torch.no_grad()
    def update_center(self, teacher: torch.Tensor) -> None:
        batch_center = all_reduce_mean(teacher.float().mean(0, keepdim=True))
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)
