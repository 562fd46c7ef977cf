"""What fit prints while it trains (Keras' verbose convention).

verbose=0 prints nothing. verbose=2 prints one line per epoch. verbose=1 (or
"auto") draws a live bar per epoch when the stream is a terminal (batches
done, time per step, ETA, running loss) and otherwise prints one line per
epoch, as verbose=2 does.

The live bar is drawn by a Python thread that wakes a few times a second and
reads the core's batch counter (``net.progress()``: atomics the epoch loop
publishes after each batch). The epoch itself runs in the core with the GIL
released, so drawing costs the training thread nothing but the GIL hand-offs
of those wake-ups. tqdm draws the bar when it is installed; a built-in line
does otherwise.
"""

from __future__ import annotations

import sys
import threading
import time

_SKIP = ("grad_norm_", "dead_relu_")


def check_verbose(verbose):
    """verbose as 0, 1 or 2 (True is 1, "auto" is 1)."""
    if isinstance(verbose, str):
        if verbose == "auto":
            return 1
    elif verbose in (0, 1, 2):  # bool and NumPy integers included
        return int(verbose)
    raise ValueError(f"verbose: expected 0, 1, 2 or 'auto', got {verbose!r}")


def _metrics(record):
    return "  ".join(
        f"{k} {v:.5g}" for k, v in record.items() if not k.startswith(_SKIP) and k != "time"
    )


def _clock(seconds):
    seconds = int(round(max(seconds, 0.0)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _per_step(seconds, steps):
    if steps <= 0:
        return "-"
    t = seconds / steps
    return f"{t * 1e3:.3g} ms/step" if t < 1.0 else f"{t:.3g} s/step"


class EpochLines:
    """One line per epoch (verbose=2, or verbose=1 off a terminal)."""

    def __init__(self, epochs, stream):
        self.epochs = epochs
        self.stream = stream

    def begin_epoch(self, epoch):
        pass

    def end_epoch(self, epoch, record, batches):
        print(f"Epoch {epoch}/{self.epochs}  {_metrics(record)}  ({record['time']:.3f} s)",
              file=self.stream, flush=True)

    def close(self):
        pass


class LiveBar:
    """A bar per epoch, redrawn by a daemon thread from the core's counter.

    net: the core network whose ``progress()`` is read; epochs: the epochs of
    this fit; n_batches: the batches of a full epoch.
    """

    def __init__(self, net, epochs, n_batches, stream, interval=0.1, use_tqdm=None):
        # use_tqdm: None or True, tqdm when installed; False, the built-in line.
        self.net = net
        self.epochs = epochs
        self.n_batches = max(int(n_batches), 1)
        self.stream = stream
        self.interval = float(interval)
        self._tqdm = None if use_tqdm is False else _load_tqdm()
        self._lock = threading.Lock()
        self._epoch = None  # the running epoch's number, None between epochs
        self._t0 = 0.0
        self._bar = None
        self._width = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fastmlp-progress", daemon=True)
        self._thread.start()

    # -- called by fit, in the training thread --------------------------------
    def begin_epoch(self, epoch):
        with self._lock:
            self._epoch = epoch
            self._t0 = time.perf_counter()
            if self._tqdm is not None:
                self._bar = self._tqdm(
                    total=self.n_batches, desc=f"Epoch {epoch}/{self.epochs}", unit="step",
                    file=self.stream, leave=True, dynamic_ncols=True, mininterval=0.0)
            else:
                self._draw(0, 0, 0.0)

    def end_epoch(self, epoch, record, batches):
        with self._lock:
            elapsed = record.get("time", time.perf_counter() - self._t0)
            tail = f"{_per_step(elapsed, batches)}  {_metrics(record)}"
            if self._bar is not None:
                self._bar.update(batches - self._bar.n)
                self._bar.set_postfix_str(tail)
                self._bar.close()
                self._bar = None
            else:
                line = (f"Epoch {epoch}/{self.epochs}  {batches}/{self.n_batches} "
                        f"{self._gauge(batches)}  {elapsed:.2f} s  {tail}")
                self._write(line, end="\n")
            self._epoch = None

    def close(self):
        self._stop.set()
        self._thread.join()
        with self._lock:
            if self._bar is not None:  # an epoch that did not end (Ctrl-C, divergence)
                self._bar.close()
                self._bar = None
            elif self._epoch is not None:
                self.stream.write("\n")
                self.stream.flush()
            self._epoch = None

    # -- the drawing thread ------------------------------------------------------
    def _run(self):
        while not self._stop.wait(self.interval):
            with self._lock:
                if self._epoch is None:
                    continue
                batches, rows, loss_sum = self.net.progress()
                loss = loss_sum / rows if rows else float("nan")
                if self._bar is not None:
                    elapsed = time.perf_counter() - self._t0
                    self._bar.set_postfix_str(
                        f"{_per_step(elapsed, batches)}  loss {loss:.5g}", refresh=False)
                    self._bar.update(batches - self._bar.n)
                else:
                    self._draw(batches, rows, loss)

    def _gauge(self, batches, width=24):
        filled = min(width, int(width * batches / self.n_batches))
        if filled == width:
            return "[" + "=" * width + "]"
        return "[" + "=" * filled + ">" + "." * (width - filled - 1) + "]"

    def _draw(self, batches, rows, loss):
        elapsed = time.perf_counter() - self._t0
        if batches:
            eta = elapsed / batches * max(self.n_batches - batches, 0)
            tail = f"ETA {_clock(eta)}  {_per_step(elapsed, batches)}  loss {loss:.5g}"
        else:
            tail = "ETA -"
        self._write(f"Epoch {self._epoch}/{self.epochs}  {batches}/{self.n_batches} "
                    f"{self._gauge(batches)}  {tail}")

    def _write(self, line, end=""):
        pad = max(self._width - len(line), 0)
        self._width = 0 if end else len(line)
        self.stream.write("\r" + line + " " * pad + end)
        self.stream.flush()


def _load_tqdm():
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def reporter(verbose, net, epochs, n_batches, stream=None):
    """The reporter fit uses for `verbose` (already checked), or None."""
    if not verbose:
        return None
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if verbose == 1 and isatty is not None and isatty():
        return LiveBar(net, epochs, n_batches, stream)
    return EpochLines(epochs, stream)
