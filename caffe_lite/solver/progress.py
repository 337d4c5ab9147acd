"""Training progress for people: a tqdm bar on a terminal (when tqdm is
installed), else one plain line per display interval; the recorded curve can
be drawn with matplotlib (the ``plot`` extra)."""
import sys
import time

from ..errors import require
from .report import Reporter


class ConsoleReporter(Reporter):
    """Prints progress and records the training curve (``curve``)."""

    def __init__(self, max_iter, start_iter=0, quiet=False, stream=None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.start = time.perf_counter()
        self.losses = []             # (iter, smoothed loss) every iteration
        self.rates = []              # (iter, lr) at display iterations
        self.tests = []              # (iter, net id, {output: mean})
        self.snapshots = []
        self.bar = None
        if not quiet and self.stream.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=max_iter, initial=start_iter, file=self.stream,
                                unit="it", dynamic_ncols=True)

    def attach(self, solver):
        """Follow ``solver``: it reports here, and each iteration is recorded."""
        solver.reporter = self

        def iteration_done():
            self.losses.append((solver.iter, solver.smoothed_loss))
            if self.bar is not None:
                self.bar.update(1)
        solver.add_callback(None, iteration_done)
        return self

    def _print(self, line):
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def elapsed(self):
        return time.perf_counter() - self.start

    def train(self, it, loss, lr, outputs, seconds):
        self.rates.append((it, lr))
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4g}", lr=f"{lr:.3g}", refresh=False)
        else:
            self._print(f"Iteration {it}, loss = {loss:.6g}, lr = {lr:.6g}, "
                        f"elapsed {self.elapsed():.1f} s")

    def test(self, it, net_id, scores, loss):
        self.tests.append((it, net_id, {k: float(v.mean()) for k, v in scores.items()}))
        parts = [f"{name} = {', '.join(f'{x:.6g}' for x in values)}"
                 for name, values in scores.items()]
        if loss is not None:
            parts.append(f"test loss = {loss:.6g}")
        self._print(f"Iteration {it}, test net #{net_id}: " + "; ".join(parts))

    def snapshot(self, paths):
        self.snapshots.append(paths)
        self._print("Snapshot: " + ", ".join(paths))

    def message(self, text):
        if text.startswith("Optimization stopped"):
            self._print(text)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def plot_curve(reporter, path, title=None):
    """Training loss (and test outputs) against iterations, saved to ``path``."""
    matplotlib = require("matplotlib", "plot", "--plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    if reporter.losses:
        its, values = zip(*reporter.losses)
        ax.plot(its, values, lw=1, label="train loss (smoothed)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    names = sorted({n for _, _, s in reporter.tests for n in s})
    right = ax.twinx() if any("loss" not in n for n in names) else None
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, name in enumerate(names, start=1):       # one colour cycle for both axes
        pts = [(it, s[name]) for it, _, s in reporter.tests if name in s]
        target = ax if "loss" in name else right
        target.plot(*zip(*pts), marker="o", lw=1, label=f"test {name}",
                    color=colors[k % len(colors)])
    lines = ax.get_lines()
    if right is not None:
        right.set_ylabel("test output")
        lines += right.get_lines()
    if lines:
        ax.legend(lines, [ln.get_label() for ln in lines], loc="center right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
