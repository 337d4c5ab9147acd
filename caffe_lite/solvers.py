"""pycaffe's solver classes: SGDSolver, NesterovSolver, AdaGradSolver,
RMSPropSolver, AdaDeltaSolver, AdamSolver, and get_solver (picks by ``type``).

    solver = caffe.get_solver("solver.prototxt")
    solver.step(100)             # or solver.solve()
"""
from .errors import SolverError
from .solver.config import load_param
from .solver.solver import Solver


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


SOLVER_CLASSES = {cls.type_name: cls for cls in (
    SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver, AdaDeltaSolver,
    AdamSolver)}


def get_solver(solver, **kwargs):
    """The solver class named by the file's (or SolverParameter's) ``type``."""
    param, source = load_param(solver, kwargs.get("source"))
    if param.type not in SOLVER_CLASSES:
        raise SolverError(f"unknown solver type '{param.type}' (known types: "
                          f"{', '.join(sorted(SOLVER_CLASSES))})", file=source)
    return SOLVER_CLASSES[param.type](solver, **kwargs)


__all__ = ["Solver", "get_solver"] + [c.__name__ for c in SOLVER_CLASSES.values()]
