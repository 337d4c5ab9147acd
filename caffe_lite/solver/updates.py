"""The six update rules: each turns a param's (normalized, regularized) gradient
into the step subtracted from its weights, keeping Caffe's history blobs.

The arithmetic follows Caffe's sequence of float32 vector operations, one
rounding per operation, in the same order, so trajectories match Caffe's.
All work is in place on preallocated buffers: param arrays are (shape of the param).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import SolverError

f32 = np.float32
_RULES: dict[str, type[UpdateRule]] = {}


def register_rule(type_name):
    def decorate(cls):
        _RULES[type_name] = cls
        cls.type_name = type_name
        return cls
    return decorate


def rule_class(type_name):
    try:
        return _RULES[type_name]
    except KeyError:
        raise SolverError(f"unknown solver type '{type_name}' (known types: "
                          f"{', '.join(sorted(_RULES))})") from None


def reject_momentum(param, type_name):
    if param.momentum != 0:
        raise SolverError(f"momentum cannot be used with {type_name} (Caffe rejects "
                          f"it): set momentum 0, got {param.momentum}")


class UpdateRule:
    """History layout: ``history_per_param`` blobs per param, stored as Caffe
    does (all first blobs, then all second blobs)."""
    history_per_param = 1

    def __init__(self, param, shapes):
        self.param = param
        self.check(param)
        self.num_params = len(shapes)
        self.history = [np.zeros(s, f32)
                        for _ in range(self.history_per_param) for s in shapes]
        self.update = [np.zeros(s, f32) for s in shapes]    # Caffe's update_ / temp_
        self.temp = [np.zeros(s, f32) for s in shapes]

    @staticmethod
    def check(param):
        """Raise SolverError for settings Caffe rejects."""

    def compute(self, i, diff, local_rate, it):
        """Overwrite ``diff`` (param i's gradient) with its update value."""
        raise NotImplementedError

    def divide_by_root(self, numerator, h, rate, scratch, out):
        """out = rate numerator / (sqrt(h) + delta), as Caffe's four vector ops
        (AdaGrad, RMSProp, Adam) with ``scratch`` holding the intermediates."""
        np.sqrt(h, out=scratch)
        scratch += f32(self.param.delta)
        np.divide(numerator, scratch, out=scratch)
        np.multiply(scratch, rate, out=out)


@register_rule("SGD")
class SGDRule(UpdateRule):
    def compute(self, i, diff, local_rate, it):
        h, u = self.history[i], self.update[i]
        h *= f32(self.param.momentum)                       # h = lr g + mu h
        np.multiply(diff, local_rate, out=u)
        h += u
        np.copyto(diff, h)


@register_rule("Nesterov")
class NesterovRule(UpdateRule):
    def compute(self, i, diff, local_rate, it):
        mu = f32(self.param.momentum)
        h, old = self.history[i], self.update[i]
        np.copyto(old, h)
        h *= mu
        diff *= local_rate
        h += diff                                           # h' = lr g + mu h
        np.multiply(h, f32(1) + mu, out=diff)               # (1 + mu) h' - mu h
        old *= -mu
        diff += old


@register_rule("AdaGrad")
class AdaGradRule(UpdateRule):
    @staticmethod
    def check(param):
        reject_momentum(param, "AdaGrad")

    def compute(self, i, diff, local_rate, it):
        h, u = self.history[i], self.update[i]
        np.multiply(diff, diff, out=u)
        h += u                                              # h += g^2
        self.divide_by_root(diff, h, local_rate, u, out=diff)


@register_rule("RMSProp")
class RMSPropRule(UpdateRule):
    @staticmethod
    def check(param):
        reject_momentum(param, "RMSProp")
        if not 0 <= param.rms_decay < 1:
            raise SolverError(f"rms_decay must lie in [0, 1), got {param.rms_decay}")

    def compute(self, i, diff, local_rate, it):
        decay = f32(self.param.rms_decay)
        h, u = self.history[i], self.update[i]
        np.multiply(diff, diff, out=u)
        u *= f32(1) - decay
        h *= decay
        h += u                                              # h = d h + (1 - d) g^2
        self.divide_by_root(diff, h, local_rate, u, out=diff)


@register_rule("AdaDelta")
class AdaDeltaRule(UpdateRule):
    history_per_param = 2

    def compute(self, i, diff, local_rate, it):
        mu, delta = f32(self.param.momentum), f32(self.param.delta)
        one_minus = f32(1) - mu
        h, h2 = self.history[i], self.history[self.num_params + i]
        u, t = self.update[i], self.temp[i]
        np.multiply(diff, diff, out=u)
        u *= one_minus
        h *= mu
        h += u                                              # h = mu h + (1 - mu) g^2
        np.add(h2, delta, out=u)
        np.add(h, delta, out=t)
        u /= t
        np.sqrt(u, out=u)                                   # sqrt((h2 + d) / (h + d))
        diff *= u                                           # u = g * that
        np.multiply(diff, diff, out=u)
        u *= one_minus
        h2 *= mu
        h2 += u                                             # h2 = mu h2 + (1 - mu) u^2
        diff *= local_rate


@register_rule("Adam")
class AdamRule(UpdateRule):
    history_per_param = 2

    def compute(self, i, diff, local_rate, it):
        beta1, beta2 = f32(self.param.momentum), f32(self.param.momentum2)
        m, v = self.history[i], self.history[self.num_params + i]
        t = self.temp[i]
        step = it + 1
        # Caffe: float sqrt(1 - beta2^t) / (1 - beta1^t) evaluated in double
        correction = f32(math.sqrt(1.0 - float(beta2) ** step) /
                         (1.0 - float(beta1) ** step))
        np.multiply(diff, f32(1) - beta1, out=t)
        m *= beta1
        m += t                                              # m = b1 m + (1 - b1) g
        np.multiply(diff, diff, out=t)
        t *= f32(1) - beta2
        v *= beta2
        v += t                                              # v = b2 v + (1 - b2) g^2
        self.divide_by_root(m, v, f32(local_rate * correction), t, out=diff)
