"""The exact Gaussian processes behind the sweeper (score and log-cost), fitted on the normalised cube.

Fits always start from the same initial hyperparameters. Warm-starting from the previous suggestion's fit
would make a suggestion depend on the history of *fits*, which a service rebuilding the search from its
database (observations and pending trials only) cannot replay; a fixed start keeps ``suggest()`` a pure
function of the data. The extra Adam steps that a cold start needs are cheap at the subsampled size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import gpytorch
import numpy as np
import torch

NOISE_PRIOR_LOC = math.log(1e-2)
NOISE_PRIOR_SCALE = 0.5


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` intra-op threads and give the caller back its own setting.

    One thread keeps results bit-for-bit reproducible and is also the fastest for matrices of a few
    hundred rows.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class MaternKernel(gpytorch.kernels.Kernel):
    """outputscale · Matern(nu=1.5, ARD), plus variance · x·x' if ``linear``, computed densely.

    One fused dense kernel instead of gpytorch's ScaleKernel + LinearKernel composition: the lazy-operator
    machinery costs several times the arithmetic at a few hundred points, and the fit runs ~50 steps per
    suggestion.
    """

    is_stationary = False

    def __init__(self, dim: int, linear: bool) -> None:
        super().__init__()
        self.linear = linear
        initial = {"raw_lengthscale": torch.zeros(dim), "raw_outputscale": torch.tensor(0.0)}
        if linear:
            initial["raw_linear"] = torch.tensor(0.0)
        for name, value in initial.items():
            self.register_parameter(name, torch.nn.Parameter(value))
            self.register_constraint(name, gpytorch.constraints.Positive())

    def _value(self, name: str) -> torch.Tensor:
        return getattr(self, f"{name}_constraint").transform(getattr(self, name))

    def set(self, lengthscale: float, outputscale: float, linear: float) -> None:
        """Initial values; ``linear`` is ignored without the linear term."""
        values = {"raw_lengthscale": lengthscale, "raw_outputscale": outputscale, "raw_linear": linear}
        for name, raw in self.named_parameters():
            value = values[name]
            raw.data.copy_(getattr(self, f"{name}_constraint").inverse_transform(torch.full_like(raw, value)))

    @property
    def lengthscales(self) -> torch.Tensor:
        return self._value("raw_lengthscale")

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, diag: bool = False, **_: object) -> torch.Tensor:
        ls, scale = self.lengthscales, self._value("raw_outputscale")
        if diag:
            k, dot = scale.expand(x1.shape[:-1]), (x1 * x2).sum(-1)
        else:
            a, b = x1 / ls, x2 / ls
            sq = (a * a).sum(-1, keepdim=True) + (b * b).sum(-1) - 2.0 * a @ b.T
            r = math.sqrt(3.0) * torch.sqrt(sq.clamp_min(0.0) + 1e-12)
            k, dot = scale * (1.0 + r) * torch.exp(-r), x1 @ x2.T
        return k + self._value("raw_linear") * dot if self.linear else k


class _ExactGP(gpytorch.models.ExactGP):
    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, likelihood: gpytorch.likelihoods.Likelihood, linear: bool
    ) -> None:
        super().__init__(x, y, likelihood)
        d = x.shape[-1]
        self.mean_module = gpytorch.means.LinearMean(d) if linear else gpytorch.means.ConstantMean()
        self.covar_module = MaternKernel(d, linear)

    def forward(self, x: torch.Tensor) -> gpytorch.distributions.MultivariateNormal:
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))


class GP:
    """Matern(nu=1.5) exact GP with a LogNormal noise prior, fitted by Adam from a fixed start.

    ``linear`` adds a linear mean and a linear kernel term. That suits log cost, which is close to linear in
    the (log-scaled) cost parameter: the model keeps extrapolating towards budgets not tried yet, where a
    constant mean would fall back to average. The score has no such global trend: there a linear term
    pulls the model towards the edges of the space.
    """

    def __init__(
        self, x: np.ndarray, y: np.ndarray, steps: int = 50, lr: float = 0.08, linear: bool = False
    ) -> None:
        self._x = torch.as_tensor(x, dtype=torch.float64)
        self._y = torch.as_tensor(y, dtype=torch.float64)
        self._x_fit, self._y_fit = self._x, self._y
        self._noise_prior = gpytorch.priors.LogNormalPrior(
            torch.tensor(NOISE_PRIOR_LOC, dtype=torch.float64),
            torch.tensor(NOISE_PRIOR_SCALE, dtype=torch.float64),
        )
        self.likelihood = gpytorch.likelihoods.GaussianLikelihood(
            noise_constraint=gpytorch.constraints.GreaterThan(1e-5)
        ).double()
        self.model = _ExactGP(self._x, self._y, self.likelihood, linear).double()
        self._initialise()
        self._fit(steps, lr)

    def _initialise(self) -> None:
        self.likelihood.noise = 1e-2
        mean = self.model.mean_module
        if isinstance(mean, gpytorch.means.LinearMean):
            mean.weights.data.zero_()
            mean.bias.data.fill_(float(self._y.mean()))
        else:
            mean.constant.data.fill_(float(self._y.mean()))
        outputscale = max(float(self._y.var()) if len(self._y) > 1 else 0.1, 1e-3)
        self.model.covar_module.set(lengthscale=0.8, outputscale=outputscale, linear=0.05)

    def _fit(self, steps: int, lr: float) -> None:
        # The marginal likelihood by one dense Cholesky per step: the same objective as gpytorch's
        # ExactMarginalLogLikelihood (noise prior included), at a fraction of its per-step overhead.
        self.model.train()
        self.likelihood.train()
        opt = torch.optim.Adam(self.model.parameters(), lr=lr)
        n = len(self._x)
        eye = torch.eye(n, dtype=torch.float64)
        for _ in range(steps):
            opt.zero_grad()
            noise = self.likelihood.noise
            k = self.model.covar_module.forward(self._x, self._x) + (noise + 1e-6) * eye
            chol = torch.linalg.cholesky(k)
            resid = (self._y - self.model.mean_module(self._x)).unsqueeze(-1)
            fit = torch.cholesky_solve(resid, chol)
            nll = 0.5 * (resid * fit).sum() + torch.log(torch.diagonal(chol)).sum()
            loss = (nll - self._noise_prior.log_prob(noise).sum()) / n
            loss.backward()
            opt.step()
        self.model.eval()
        self.likelihood.eval()
        self._factorise()

    @property
    def lengthscales(self) -> np.ndarray:
        return self.model.covar_module.lengthscales.detach().numpy()

    def condition(self, x_extra: np.ndarray, y_extra: np.ndarray) -> None:
        """Condition on the fitted data plus these points, hyperparameters fixed; empty arrays undo it.

        Used to fantasise pending trials at their predicted value.
        """
        self._x = torch.cat([self._x_fit, torch.as_tensor(x_extra, dtype=torch.float64)])
        self._y = torch.cat([self._y_fit, torch.as_tensor(y_extra, dtype=torch.float64)])
        self._factorise()

    def _factorise(self) -> None:
        # Plain Cholesky algebra: gpytorch's lazy predictive path is far slower for thousands of candidates.
        with torch.no_grad():
            k = self.model.covar_module.forward(self._x, self._x)
            k = k + (self.likelihood.noise + 1e-6) * torch.eye(len(self._x), dtype=torch.float64)
            self._chol = torch.linalg.cholesky(k)
            resid = (self._y - self.model.mean_module(self._x)).unsqueeze(-1)
            self._alpha = torch.cholesky_solve(resid, self._chol).squeeze(-1)

    def loo_calibration(self) -> float:
        """Root mean square of the leave-one-out errors in units of their predicted standard deviation;
        about 1 when the GP's uncertainty is honest, more when it is overconfident. In closed form from
        the fitted factorisation: the error at point i is alpha_i / [K^-1]_ii, its variance 1 / [K^-1]_ii.
        """
        with torch.no_grad():
            precision_diag = torch.diagonal(torch.cholesky_inverse(self._chol))
            z = self._alpha / precision_diag.sqrt()
        return float(z.pow(2).mean().sqrt())

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the latent function (noise excluded)."""
        xt = torch.as_tensor(x, dtype=torch.float64)
        with torch.no_grad():
            cross = self.model.covar_module.forward(xt, self._x)
            mean = self.model.mean_module(xt) + cross @ self._alpha
            v = torch.linalg.solve_triangular(self._chol, cross.T, upper=False)
            prior_var = self.model.covar_module.forward(xt, xt, diag=True)
            var = (prior_var - (v * v).sum(0)).clamp_min(0)
        return mean.numpy(), var.sqrt().numpy()
