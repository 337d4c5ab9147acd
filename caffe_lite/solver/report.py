"""Where a solver's progress goes. The default writes Caffe's log lines to the
``caffe_lite.solver`` logger; the CLI swaps in a progress bar or plain lines."""
import logging

log = logging.getLogger("caffe_lite.solver")


class Reporter:
    """Receives training events; subclass and set ``solver.reporter``."""

    def train(self, it, loss, lr, outputs, seconds):
        """After iteration ``it`` at a display interval: smoothed ``loss``, the
        ``lr`` used, {output name: values} of the train net, seconds since the
        previous display."""
        log.info("Iteration %d (%.4g s), loss = %.6g, lr = %.6g", it, seconds, loss, lr)
        for _name, line in output_lines(outputs):
            log.info("    Train net output %s", line)

    def test(self, it, net_id, scores, loss):
        """Mean test outputs {name: values}; ``loss`` when test_compute_loss."""
        log.info("Iteration %d, Testing net (#%d)", it, net_id)
        if loss is not None:
            log.info("Test loss: %.6g", loss)
        for _name, line in output_lines(scores):
            log.info("    Test net output %s", line)

    def snapshot(self, paths):
        log.info("Snapshotting to %s", ", ".join(paths))

    def message(self, text):
        log.info("%s", text)


def output_lines(outputs):
    """('name', '#k: name = value') per scalar of each output, numbered as Caffe."""
    k = 0
    for name, values in outputs.items():
        for value in values:
            yield name, f"#{k}: {name} = {float(value):.6g}"
            k += 1


class SilentReporter(Reporter):
    """Reports nothing: the ranks other than 0 of data-parallel training."""

    def train(self, it, loss, lr, outputs, seconds):
        pass

    def test(self, it, net_id, scores, loss):
        pass

    def snapshot(self, paths):
        pass

    def message(self, text):
        pass
