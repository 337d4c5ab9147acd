"""pycaffe's solver classes: SGDSolver, NesterovSolver, AdaGradSolver,
RMSPropSolver, AdaDeltaSolver, AdamSolver, and get_solver (picks by ``type``).

Each class only names its update rule; the registry of rules (updates.py) is
the one list of solver types.

    solver = caffe.get_solver("solver.prototxt")
    solver.step(100)             # or solver.solve()
"""
from __future__ import annotations

import os
from typing import Any

from ..errors import SolverError
from .config import load_param
from .solver import Solver
from .updates import rule_class


class SGDSolver(Solver):
    type_name = "SGD"


class NesterovSolver(Solver):
    type_name = "Nesterov"


class AdaGradSolver(Solver):
    type_name = "AdaGrad"


class RMSPropSolver(Solver):
    type_name = "RMSProp"


class AdaDeltaSolver(Solver):
    type_name = "AdaDelta"


class AdamSolver(Solver):
    type_name = "Adam"


def get_solver(solver: str | os.PathLike[str] | Any, **kwargs: Any) -> Solver:
    """The solver class named by the file's (or SolverParameter's) ``type``."""
    param, source = load_param(solver, kwargs.get("source"))
    try:
        rule_class(param.type)              # the registry names the known types
    except SolverError as exc:
        exc.with_context(file=source)
        raise
    cls = next(c for c in Solver.__subclasses__() if c.type_name == param.type)
    return cls(solver, **kwargs)


__all__ = ["Solver", "get_solver", "SGDSolver", "NesterovSolver", "AdaGradSolver",
           "RMSPropSolver", "AdaDeltaSolver", "AdamSolver"]
