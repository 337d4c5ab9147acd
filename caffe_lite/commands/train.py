"""``caffe-lite train``: Caffe's ``caffe train`` (train, finetune or resume).
Under ``mpiexec -n N`` it trains data-parallel on N ranks; rank 0 alone prints."""
import os
import sys

from ..errors import CaffeLiteError, SolverError, require
from ..formats import read_solver_param
from ..solver.progress import ConsoleReporter, plot_curve
from ._caffe_flags import add_caffe_flags, apply_fast, note_gpu, stages, weights_list

HELP = "train or finetune a model from a solver definition"


def add_arguments(parser):
    add_caffe_flags(parser, required=("solver",))
    parser.add_argument("--plot", metavar="PNG",
                        help="write the training curve here (needs matplotlib)")
    parser.add_argument("--quiet", action="store_true",
                        help="print only the final result")
    parser.add_argument("--continue_on_nan", action="store_true",
                        help="go on when the loss becomes NaN or infinite, as Caffe "
                             "does (default: stop there, naming the layer)")


def run(args):
    from ..solver.classes import get_solver
    note_gpu(args)
    apply_fast(args)
    if args.snapshot and args.weights:
        raise SolverError("give a snapshot to resume training or weights to "
                          "finetune, not both")
    if args.plot:
        require("matplotlib", "plot", "--plot (the training curve)")
    if not os.path.isfile(args.solver):
        raise SolverError("solver file does not exist", file=args.solver)
    param = read_solver_param(args.solver)
    param.train_state.level = args.level
    param.train_state.stage.extend(stages(args))
    if args.snapshot or args.weights:
        param.ClearField("weights")
    param.weights.extend(weights_list(args))
    solver = get_solver(param, source=args.solver,
                        allow_python_layers=args.allow_python_layers,
                        continue_on_nan=args.continue_on_nan)
    parallel = solver.parallel
    root = parallel is None or parallel.rank == 0
    try:
        if args.snapshot:
            solver.restore(args.snapshot)
        reporter = ConsoleReporter(param.max_iter, solver.iter,
                                   quiet=args.quiet or not root)
        if parallel is not None and root and not args.quiet:
            print(f"Data-parallel training on {parallel.size} ranks "
                  f"({parallel.comm.describe()})", file=sys.stderr, flush=True)
        reporter.attach(solver)
        try:
            solver.solve(sigint_effect=args.sigint_effect,
                         sighup_effect=args.sighup_effect)
        finally:
            reporter.close()
    except CaffeLiteError as exc:
        if parallel is None:
            raise
        _stop_all_ranks(parallel, exc)
    if not root:
        return 0
    _summary(solver, reporter)
    if args.plot:
        plot_curve(reporter, args.plot, title=f"{solver.net.name} ({solver.type})")
        print(f"Training curve: {args.plot}")
    return 0


def _stop_all_ranks(parallel, exc):
    """An error on some ranks: said once (by rank 0 when all ranks met it, as
    a non-finite loss), else by the rank that met it, which then stops the
    others, who would wait for it."""
    from ..solver.health import NonFiniteError
    if isinstance(exc, NonFiniteError):               # every rank saw the same loss
        if parallel.rank == 0:
            raise exc
        sys.exit(1)
    print(f"caffe-lite train: error on rank {parallel.rank}: {exc}", file=sys.stderr,
          flush=True)
    parallel.abort(1)


def _summary(solver, reporter):
    line = f"Trained {solver.net.name} for {solver.iter} iterations in " \
           f"{reporter.elapsed():.1f} s"
    if reporter.losses:
        line += f"; final loss {reporter.losses[-1][1]:.4g}"
    print(line)
    if solver.test_nets and solver.test_results_iter != solver.iter \
            and not solver.requested_early_exit:
        solver.test_all()                  # the figures of the final weights
    for net_id, scores in enumerate(solver.test_results):
        text = ", ".join(f"{k} = {', '.join(f'{x:.4f}' for x in v)}"
                         for k, v in scores.items())
        print(f"Test net #{net_id} (iteration {solver.test_results_iter}): {text}")
    if reporter.snapshots:
        print(f"Weights: {reporter.snapshots[-1][0]}")
