"""CRD's contrastive distillation objective."""

from __future__ import annotations

import torch
from torch import nn
from zoo.training.losses.nce import NCELoss
from zoo.training.precision import full_precision


class CRDLoss(nn.Module):
    """Contrastive representation distillation (Tian, Krishnan & Isola 2020, eq. 18-19 and
    their code's ``ContrastLoss``): the student embedding of image i must pick the teacher's
    stored embedding of image i against m noise teacher embeddings, and symmetrically the
    teacher's embedding against student ones, each by NCE (:class:`NCELoss`, their "NCE
    with m negatives", T 0.07). The sum of the two terms.

    Shapes: ``forward(student (N, D), teacher (N, D), student_memory, teacher_memory)`` with
    each memory a pair ``(own entries (N, D), noise entries (N, m, D))`` from the banks of
    student and teacher embeddings; returns a scalar.
    """

    def __init__(self, num_data: int, temperature: float = 0.07) -> None:
        super().__init__()
        self.student_term = NCELoss(num_data, temperature)
        self.teacher_term = NCELoss(num_data, temperature)

    @full_precision
    def forward(
        self,
        student: torch.Tensor,
        teacher: torch.Tensor,
        student_memory: tuple[torch.Tensor, torch.Tensor],
        teacher_memory: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        # The student is anchored against the teacher's memory and vice versa.
        return self.student_term(student, *teacher_memory) + self.teacher_term(teacher, *student_memory)
