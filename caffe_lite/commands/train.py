"""``caffe-lite train``: Caffe's ``caffe train`` (train, finetune or resume)."""
import os

from ..errors import SolverError
from ..formats import read_solver_param
from ..solver.progress import ConsoleReporter, plot_curve
from ..solver.signals import EFFECTS

HELP = "train or finetune a model from a solver definition"


def add_arguments(parser):
    parser.add_argument("--solver", required=True,
                        help="the solver definition (.prototxt)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--weights", help="pretrained weights to finetune from "
                                         "(.caffemodel, comma-separated list allowed)")
    start.add_argument("--snapshot", help="a .solverstate to resume training from")
    parser.add_argument("--plot", metavar="PNG",
                        help="write the training curve here (needs matplotlib)")
    parser.add_argument("--quiet", action="store_true",
                        help="print only the final result")
    parser.add_argument("--level", type=int, default=0, help="network level")
    parser.add_argument("--stage", default="", help="network stages, comma-separated")
    parser.add_argument("--allow_python_layers", action="store_true", default=None,
                        help="run Python layers the prototxt names (executes their code)")
    parser.add_argument("--sigint_effect", default="stop", choices=EFFECTS,
                        help="what Ctrl-C does: stop (after a snapshot), snapshot "
                             "or none (default: stop)")
    parser.add_argument("--sighup_effect", default="snapshot", choices=EFFECTS,
                        help="what SIGHUP does (default: snapshot)")


def run(args):
    from ..solver.classes import get_solver
    if not os.path.isfile(args.solver):
        raise SolverError("solver file does not exist", file=args.solver)
    param = read_solver_param(args.solver)
    param.train_state.level = args.level
    param.train_state.stage.extend(s for s in args.stage.split(",") if s)
    if args.snapshot or args.weights:
        param.ClearField("weights")
    if args.weights:
        param.weights.append(args.weights)
    solver = get_solver(param, source=args.solver,
                        allow_python_layers=args.allow_python_layers)
    if args.snapshot:
        solver.restore(args.snapshot)
    reporter = ConsoleReporter(param.max_iter, solver.iter, quiet=args.quiet)
    reporter.attach(solver)
    try:
        solver.solve(sigint_effect=args.sigint_effect,
                     sighup_effect=args.sighup_effect)
    finally:
        reporter.close()
    _summary(solver, reporter)
    if args.plot:
        plot_curve(reporter, args.plot, title=f"{solver.net.name} ({solver.type})")
        print(f"Training curve: {args.plot}")
    return 0


def _summary(solver, reporter):
    line = f"Trained {solver.net.name} for {solver.iter} iterations in " \
           f"{reporter.elapsed():.1f} s"
    if reporter.losses:
        line += f"; final loss {reporter.losses[-1][1]:.4g}"
    print(line)
    for net_id, scores in enumerate(solver.test_results):
        text = ", ".join(f"{k} = {', '.join(f'{x:.4f}' for x in v)}"
                         for k, v in scores.items())
        print(f"Test net #{net_id}: {text}")
    if reporter.snapshots:
        print(f"Weights: {reporter.snapshots[-1][0]}")
