"""Learning-rate policies (SolverParameter.lr_policy), rounded like Caffe's float code.

Caffe computes the rate in float, except where an integer exponent promotes
``pow`` to double (step, exp, multistep); we evaluate each formula in double and
round where Caffe's float arithmetic rounds, so the rates match bit for bit.
"""
import math

import numpy as np

from ..errors import SolverError

f32 = np.float32


def _powf(base, exponent):
    """C's powf: the double result rounded to float (glibc's powf is exact enough)."""
    return f32(float(base) ** float(exponent))


def _fixed(p, it, step):
    return f32(p.base_lr), step


def _step(p, it, step):
    step = it // p.stepsize
    return f32(float(f32(p.base_lr)) * float(f32(p.gamma)) ** step), step


def _exp(p, it, step):
    return f32(float(f32(p.base_lr)) * float(f32(p.gamma)) ** it), step


def _inv(p, it, step):
    base = f32(1) + f32(p.gamma) * f32(it)               # float: 1 + gamma * iter
    return f32(p.base_lr) * _powf(base, -f32(p.power)), step


def _multistep(p, it, step):
    # one step per call at most, as in Caffe (current_step lives in the solverstate)
    if step < len(p.stepvalue) and it >= p.stepvalue[step]:
        step += 1
    return f32(float(f32(p.base_lr)) * float(f32(p.gamma)) ** step), step


def _poly(p, it, step):
    frac = f32(1) - f32(it) / f32(p.max_iter)
    return f32(p.base_lr) * _powf(frac, f32(p.power)), step


def _sigmoid(p, it, step):
    x = -f32(p.gamma) * (f32(it) - f32(p.stepsize))
    return f32(p.base_lr) * (f32(1) / (f32(1) + f32(math.exp(float(x))))), step


POLICIES = {"fixed": _fixed, "step": _step, "exp": _exp, "inv": _inv,
            "multistep": _multistep, "poly": _poly, "sigmoid": _sigmoid}


def check_lr_policy(param):
    """Reject what Caffe would abort on, at construction rather than mid-training."""
    policy = param.lr_policy
    if policy not in POLICIES:
        raise SolverError(f"unknown lr_policy '{policy}' (known: "
                          f"{', '.join(sorted(POLICIES))})")
    if policy in ("step", "sigmoid") and param.stepsize <= 0:
        raise SolverError(f"lr_policy '{policy}' needs stepsize > 0, got "
                          f"{param.stepsize}")
    if policy in ("step", "exp", "inv", "multistep") and param.gamma <= 0:
        raise SolverError(f"gamma: lr_policy '{policy}' needs gamma > 0, got "
                          f"{param.gamma:g} (Caffe accepts it silently and the rate "
                          f"collapses to 0 or explodes)")
    if policy == "multistep":
        steps = list(param.stepvalue)
        if any(b <= a for a, b in zip(steps, steps[1:])):
            raise SolverError(f"stepvalue: lr_policy 'multistep' needs increasing "
                              f"stepvalues, got {steps} (Caffe accepts them silently "
                              f"and skips the later ones)")
    if policy == "poly" and param.max_iter <= 0:
        raise SolverError("lr_policy 'poly' needs max_iter > 0")


def learning_rate(param, it, current_step):
    """(rate as float32, new current_step) for iteration ``it``."""
    policy = POLICIES.get(param.lr_policy)
    if policy is None:
        check_lr_policy(param)
    return policy(param, it, current_step)
