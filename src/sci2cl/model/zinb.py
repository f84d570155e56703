"""Zero-inflated negative binomial log-likelihood (numerically stable, logit dropout)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-8


def zinb_log_likelihood(
    x: torch.Tensor,
    mu: torch.Tensor,
    theta: torch.Tensor,
    pi_logits: torch.Tensor,
    sparse: bool | None = None,
) -> torch.Tensor:
    """Elementwise log P(x | ZINB(mu, theta, pi)), with ``pi = sigmoid(pi_logits)``.

    ``mu`` is the NB mean, ``theta`` the inverse dispersion, ``pi`` the probability of an
    extra zero. All tensors broadcast to the shape of ``x``. ``sparse`` evaluates the
    non-zero branch only where ``x > 0`` (cheapest on the CPU, but its data-dependent shape
    would make an accelerator wait for the host); by default it is used on the CPU only.
    """
    x, mu, theta, pi_logits = torch.broadcast_tensors(x, mu, theta, pi_logits)
    log_theta_mu = torch.log(theta + mu + EPS)
    nb_zero_log = theta * (torch.log(theta + EPS) - log_theta_mu)  # log NB(0)
    softplus_neg_pi = F.softplus(-pi_logits)
    case_zero = F.softplus(nb_zero_log - pi_logits) - softplus_neg_pi
    parts = (x, mu, theta, pi_logits, softplus_neg_pi, nb_zero_log, log_theta_mu)
    if not (x.device.type == "cpu" if sparse is None else sparse):
        return torch.where(x >= EPS, _nonzero_case(*parts), case_zero)
    # Counts are sparse: evaluate the non-zero branch (lgamma etc.) only where x > 0.
    nz = torch.nonzero(x >= EPS, as_tuple=True)
    return case_zero.index_put(nz, _nonzero_case(*(p[nz] for p in parts)))


def _nonzero_case(x, mu, theta, pi_logits, softplus_neg_pi, nb_zero_log, log_theta_mu):
    """log P(x | ZINB) for x > 0: log(1 - pi) + log NB(x)."""
    return (
        -pi_logits
        - softplus_neg_pi
        + nb_zero_log
        + x * (torch.log(mu + EPS) - log_theta_mu)
        + torch.lgamma(x + theta)
        - torch.lgamma(theta)
        - torch.lgamma(x + 1.0)
    )
