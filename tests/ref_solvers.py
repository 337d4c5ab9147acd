"""Naive references for the solvers, written from the formulas in
caffe-semantics.md §5 with plain Python loops over flat lists (float64), never
calling caffe_lite's solver code."""
import math


def ref_rate(p, it, current_step):
    """(rate, current_step) from the lr policy formulas."""
    policy = p["lr_policy"]
    base = p["base_lr"]
    if policy == "fixed":
        return base, current_step
    if policy == "step":
        k = it // p["stepsize"]
        return base * p["gamma"] ** k, k
    if policy == "exp":
        return base * p["gamma"] ** it, current_step
    if policy == "inv":
        return base * (1 + p["gamma"] * it) ** (-p["power"]), current_step
    if policy == "multistep":
        if current_step < len(p["stepvalue"]) and it >= p["stepvalue"][current_step]:
            current_step += 1
        return base * p["gamma"] ** current_step, current_step
    if policy == "poly":
        return base * (1 - it / p["max_iter"]) ** p["power"], current_step
    if policy == "sigmoid":
        return base / (1 + math.exp(-p["gamma"] * (it - p["stepsize"]))), current_step
    raise ValueError(policy)


def _sign(x):
    return (x > 0) - (x < 0)


class RefSolver:
    """params: list of flat lists; grad_fn(params, it) -> list of flat lists."""

    def __init__(self, p, params, lr_mults, decay_mults):
        self.p = dict(p)
        self.params = [list(map(float, w)) for w in params]
        self.lr_mults, self.decay_mults = lr_mults, decay_mults
        n = len(params)
        doubled = p["type"] in ("AdaDelta", "Adam")
        self.history = [[0.0] * len(w) for w in self.params] + (
            [[0.0] * len(w) for w in self.params] if doubled else [])
        self.n = n
        self.iter = 0
        self.current_step = 0

    def step(self, grad_fn):
        p = self.p
        iter_size = p.get("iter_size", 1)
        grads = [[0.0] * len(w) for w in self.params]
        for _ in range(iter_size):                     # accumulate passes
            for g, gi in zip(grads, grad_fn(self.params, self.iter)):
                for j in range(len(g)):
                    g[j] += gi[j]
        rate, self.current_step = ref_rate(p, self.iter, self.current_step)
        clip = p.get("clip_gradients", -1)
        if clip >= 0:
            norm = math.sqrt(sum(x * x for g in grads for x in g))
            if norm > clip:
                grads = [[x * clip / norm for x in g] for g in grads]
        for i, (w, g) in enumerate(zip(self.params, grads)):
            decay = p.get("weight_decay", 0) * self.decay_mults[i]
            lr = rate * self.lr_mults[i]
            for j in range(len(w)):
                gj = g[j] / iter_size
                if p.get("regularization_type", "L2") == "L2":
                    gj += decay * w[j]
                else:
                    gj += decay * _sign(w[j])
                w[j] -= self._update(i, j, gj, lr)
        self.iter += 1

    def _update(self, i, j, g, lr):
        p, h = self.p, self.history
        kind = p["type"]
        mu = p.get("momentum", 0.0)
        delta = p.get("delta", 1e-8)
        if kind == "SGD":
            h[i][j] = mu * h[i][j] + lr * g
            return h[i][j]
        if kind == "Nesterov":
            old = h[i][j]
            h[i][j] = mu * old + lr * g
            return (1 + mu) * h[i][j] - mu * old
        if kind == "AdaGrad":
            h[i][j] += g * g
            return lr * g / (math.sqrt(h[i][j]) + delta)
        if kind == "RMSProp":
            d = p.get("rms_decay", 0.99)
            h[i][j] = d * h[i][j] + (1 - d) * g * g
            return lr * g / (math.sqrt(h[i][j]) + delta)
        k = self.n + i
        if kind == "AdaDelta":
            h[i][j] = mu * h[i][j] + (1 - mu) * g * g
            u = g * math.sqrt((h[k][j] + delta) / (h[i][j] + delta))
            h[k][j] = mu * h[k][j] + (1 - mu) * u * u
            return lr * u
        if kind == "Adam":
            b1, b2 = mu, p.get("momentum2", 0.999)
            t = self.iter + 1
            h[i][j] = b1 * h[i][j] + (1 - b1) * g
            h[k][j] = b2 * h[k][j] + (1 - b2) * g * g
            correction = math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            return lr * correction * h[i][j] / (math.sqrt(h[k][j]) + delta)
        raise ValueError(kind)
