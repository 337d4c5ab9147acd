"""The flags of Caffe's ``caffe`` tool, with its spellings, shared by train, test
and time: as with gflags, every command accepts all of them and ignores the
ones it does not use (``-gpu`` says once that the run is on the CPU)."""
import argparse
import sys

from ..solver.signals import EFFECTS


def add_caffe_flags(parser: argparse.ArgumentParser, required=()) -> None:
    """Caffe's flags; those in ``required`` must be given."""
    def flag(name, **kwargs):
        parser.add_argument(f"--{name}", required=name in required, **kwargs)

    flag("solver", help="the solver definition (.prototxt); train")
    flag("model", help="the net definition (.prototxt); test, time")
    flag("weights", help="trained weights (.caffemodel); a comma-separated list to "
                         "finetune from several; train, test")
    flag("snapshot", help="a .solverstate to resume training from; train")
    flag("iterations", type=int, default=50,
         help="batches to score or passes to time (default 50); test, time")
    flag("gpu", help="accepted for Caffe's command lines: caffe_lite runs on the CPU")
    flag("level", type=int, default=0, help="network level")
    flag("stage", default="", help="network stages, comma-separated")
    flag("phase", type=str.upper, choices=("TRAIN", "TEST"),
         help="network phase; time (default TRAIN, as Caffe)")
    flag("sigint_effect", default="stop", choices=EFFECTS,
         help="what Ctrl-C does: stop (after a snapshot), snapshot or none; train")
    flag("sighup_effect", default="snapshot", choices=EFFECTS,
         help="what SIGHUP does (default: snapshot); train")
    flag("fast", action="store_true",
         help="3x3 stride-1 convolutions by Winograd F(2x2,3x3) in forward: faster, "
              "about 1e-6 relative from Caffe's numbers (set_conv_algorithm)")
    flag("allow_python_layers", action="store_true", default=None,
         help="run Python layers the prototxt names (executes their code; also "
              "CAFFE_LITE_ALLOW_PYTHON_LAYERS=1)")


def stages(args: argparse.Namespace) -> list[str]:
    return [s for s in args.stage.split(",") if s]


def weights_list(args: argparse.Namespace) -> list[str]:
    return [w for w in (args.weights or "").split(",") if w]


def apply_fast(args: argparse.Namespace) -> None:
    """``--fast``: the Winograd convolution algorithm for this run."""
    from ..ops.winograd import set_conv_algorithm
    set_conv_algorithm("winograd" if getattr(args, "fast", False) else "exact")


def note_gpu(args: argparse.Namespace) -> None:
    """Caffe's ``-gpu``: one line, then go on on the CPU."""
    if args.gpu is not None:
        print(f"caffe-lite runs on the CPU (numpy); -gpu {args.gpu} is ignored.",
              file=sys.stderr)
