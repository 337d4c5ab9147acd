"""``caffe-lite run``: a trained net over a whole data set (an image list, a
folder of images, an LMDB / LevelDB), in this process or on Dask workers, with
the outputs written in input order to an HDF5 file or a folder of shards. An
interrupted run resumes from the shards it wrote (caffe_lite/distributed/)."""
from ..errors import CaffeLiteError

HELP = "run a net over a data set (optionally on Dask workers) and save a blob per input"


def add_arguments(parser):
    parser.add_argument("--model", required=True, help="deploy net (.prototxt)")
    parser.add_argument("--weights", required=True, help="trained weights (.caffemodel)")
    parser.add_argument("--input", required=True,
                        help="an image list ('<path> [label]' lines), a folder of "
                             "images, or an LMDB / LevelDB of Datum records")
    parser.add_argument("--output", required=True,
                        help="out.h5 (datasets 'keys' and one per blob) or a folder "
                             "of shard-NNNNN.npz files")
    parser.add_argument("--blob", action="append", metavar="NAME",
                        help="blob to save, repeatable (default: prob)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="a running Dask scheduler, e.g. tcp://host:8786 "
                            "(needs the dask extra)")
    where.add_argument("--workers", type=int, metavar="N",
                       help="start a local Dask cluster of N worker processes")
    parser.add_argument("--batch-size", type=int,
                        help="inputs per forward pass (default: the net's)")
    parser.add_argument("--shard-size", type=int,
                        help="inputs per task and per output shard (default: 8 batches)")
    parser.add_argument("--transform", default="", metavar="TEXT",
                        help="transform_param as text, e.g. 'scale: 0.00390625 "
                             "mean_value: 104 crop_size: 227' (TEST phase)")
    parser.add_argument("--resize", metavar="H,W",
                        help="resize images to H x W first (default: the net's input "
                             "size, unless the transform crops)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for the Dask scheduler (default 30)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output instead of refusing")


def run(args):
    from ..distributed.dataset import run_dataset
    resize = None
    if args.resize:
        try:
            height, width = (int(v) for v in args.resize.split(","))
        except ValueError:
            raise CaffeLiteError(f"--resize takes H,W, got '{args.resize}'") from None
        resize = (height, width)
    run_dataset(args.model, args.weights, args.input, blobs=args.blob or ["prob"],
                output=args.output, batch_size=args.batch_size,
                transform=args.transform or None, resize=resize,
                scheduler=args.scheduler, workers=args.workers,
                overwrite=args.overwrite, shard_size=args.shard_size,
                timeout=args.timeout)
    print(f"Wrote {args.output}")
    return 0
