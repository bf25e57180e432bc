"""A training script whose tasks wait at their first step while a gate file is missing, so a
test can kill a replay task, its worker or the replay command mid-task whatever the load."""

SCRIPT = """\
import os
import time
import numpy as np
import flor

np.random.seed(flor.arg("seed", 0))
w = np.zeros(3)
with flor.checkpointing(weights=w):
    for epoch in flor.loop("epoch", range(4)):
        for step in flor.loop("step", range(5)):
            while not os.path.exists(GATE):
                time.sleep(0.01)
            grad = np.random.randn(3)
            w -= 0.1 * grad
        flor.log("w0", float(w[0]))
"""
# The hindsight statement: (anchor line, anchor line + new statement).
HINDSIGHT = ("            w -= 0.1 * grad\n", '            flor.log("g0", float(grad[0]))\n')
