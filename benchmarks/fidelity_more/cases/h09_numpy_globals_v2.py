"""Plain numpy softmax regression: per-class running error counts in an array updated in
place, a helper that records the lr in a module-level list and bumps a global step; the
lr decays with the global step."""
import numpy as np

import flor

seed = flor.arg("seed", 0)
lr = flor.arg("lr", 0.5)
epochs = flor.arg("epochs", 6)
decay = flor.arg("decay", 0.01)
rng = np.random.RandomState(seed)
x = rng.randn(400, 5)
y = np.argmax(x[:, :3] + 0.3 * rng.randn(400, 3), axis=1)
W = np.zeros((5, 3))
b = np.zeros(3)
LR_LOG = []
STEP = 0


def sgd_update(params, grads, lr):
    global STEP
    for p, g in zip(params, grads):
        p -= lr * g
    STEP += 1
    LR_LOG.append(lr)


def softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


with flor.checkpointing(W=W, b=b):
    for epoch in flor.loop("epoch", range(epochs)):
        errors = np.zeros(3)
        order = rng.permutation(len(x))
        for start in flor.loop("step", range(0, len(x), 40)):
            idx = order[start : start + 40]
            p = softmax(x[idx] @ W + b)
            onehot = np.eye(3)[y[idx]]
            errors += ((p.argmax(1) != y[idx])[:, None] * onehot).sum(0)
            step_lr = lr / (1.0 + decay * STEP)
            sgd_update([W, b], [x[idx].T @ (p - onehot) / len(idx), (p - onehot).mean(0)], step_lr)
        flor.log("err_total", float(errors.sum()))
