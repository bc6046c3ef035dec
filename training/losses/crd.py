"""CRD's contrastive distillation objective: CMC's two-memory NCE with student and teacher
as the two views."""

from __future__ import annotations

from zoo.training.losses.cmc import CMCLoss


class CRDLoss(CMCLoss):
    """Contrastive representation distillation (Tian, Krishnan & Isola 2020, eq. 18-19 and
    their code's ``ContrastLoss``): the student embedding of image i must pick the teacher's
    stored embedding of image i against m noise teacher embeddings, and symmetrically the
    teacher's embedding against student ones, each by NCE (:class:`NCELoss`, their "NCE
    with m negatives", T 0.07). The sum of the two terms: exactly :class:`CMCLoss` with the
    student as view 1 and the teacher as view 2 (the same authors, the same code).

    Shapes: ``forward(student (N, D), teacher (N, D), student_memory, teacher_memory)`` with
    each memory a pair ``(own entries (N, D), noise entries (N, m, D) or (m, D))`` from the
    banks of student and teacher embeddings; returns a scalar.
    """
