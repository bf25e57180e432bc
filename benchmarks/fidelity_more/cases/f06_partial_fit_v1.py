"""Online logistic regression with a partial_fit API like sklearn's SGDClassifier: numpy
only, a Generator shuffling each epoch, mini-batches fed to partial_fit, the 'optimal'
learning-rate schedule driven by the classifier's own update counter t_."""
import numpy as np

import flor


class SGDLogistic:
    def __init__(self, alpha=1e-3, random_state=0):
        self.alpha = alpha
        self.coef_ = None
        self.intercept_ = 0.0
        self.t_ = 1.0
        self.random_state = random_state

    def _lr(self):
        return 1.0 / (self.alpha * (self.t_ + 100.0))

    def partial_fit(self, X, y):
        if self.coef_ is None:
            self.coef_ = np.zeros(X.shape[1])
        for xi, yi in zip(X, y):
            margin = xi @ self.coef_ + self.intercept_
            p = 1.0 / (1.0 + np.exp(-margin))
            g = p - yi
            eta = self._lr()
            self.coef_ *= 1.0 - eta * self.alpha
            self.coef_ -= eta * g * xi
            self.intercept_ -= eta * g
            self.t_ += 1.0
        return self

    def decision_function(self, X):
        return X @ self.coef_ + self.intercept_

    def score(self, X, y):
        return float(np.mean((self.decision_function(X) > 0) == y))


seed = flor.arg("seed", 42)
alpha = flor.arg("alpha", 1e-3)
epochs = flor.arg("epochs", 5)
batch = flor.arg("batch", 50)
rng = np.random.default_rng(seed)

n, d = 800, 10
X = rng.normal(size=(n, d))
w_true = rng.normal(size=d)
y = (X @ w_true + 0.5 * rng.normal(size=n) > 0).astype(float)
X_train, y_train, X_test, y_test = X[:600], y[:600], X[600:], y[600:]

clf = SGDLogistic(alpha=alpha, random_state=seed)
with flor.checkpointing(clf=clf, rng=rng):
    for epoch in flor.loop("epoch", range(epochs)):
        order = rng.permutation(len(X_train))
        for start in flor.loop("batch", range(0, len(order), batch)):
            idx = order[start : start + batch]
            clf.partial_fit(X_train[idx], y_train[idx])
        flor.log("train_acc", clf.score(X_train, y_train))
        flor.log("test_acc", clf.score(X_test, y_test))
