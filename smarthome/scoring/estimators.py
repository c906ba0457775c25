"""The three estimators training fits, each once, vectorised over the rows of a request.

Spark's formulas in float64 (sums left to right, as Scala's loops): a random forest's
probability is its trees' normalised leaf counts summed in tree order, then normalised, and
its class the first argmax; linear regression is ``x @ coefficients + intercept``; KMeans is
the nearest center, ties to the lowest index. ``predict`` takes the features as the stages
leave them: a matrix (n, d), or for one row (the API's usual request) a vector (d,).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smarthome.contracts import scoring_file as spec


@dataclass(slots=True)
class ScoreResult:
    """One entry per row: class (float, like Spark), regression value, or cluster id."""

    prediction: np.ndarray
    probability: np.ndarray | None  # (n, classes) for the classifier, else None


def _last_of_cumsum(a: np.ndarray, axis: int) -> np.ndarray:
    """Left-to-right sum along ``axis`` (Scala's order; numpy's own sum is pairwise)."""
    return np.take(np.cumsum(a, axis=axis), -1, axis=axis)


class RandomForest:
    """Every tree in one set of flat arrays, walked one level per step for all rows and trees.

    Node k lives at slot 2k: ``child[2k]`` is its right child's slot, ``child[2k + 1]`` its
    left one's, so one step is ``slot = child[slot + (x[feature] <= threshold)]`` (NaN is
    not <=, so it goes right, as in Spark). A leaf's children are itself (threshold +inf),
    so after ``depth`` steps every (row, tree) is on its leaf. Each step is a few numpy calls
    on n * trees entries: as few for one row as for a thousand.
    """

    def __init__(self, model: spec.RandomForestClassifier):
        feature, threshold, child, roots, depths = [], [], [], [], []
        offset = 0
        for tree in model.trees:
            n = len(tree.feature)
            features = np.asarray(tree.feature, dtype=np.int64)
            leaf = features < 0
            slots = 2 * (np.arange(n) + offset)
            feature.append(np.where(leaf, 0, features).repeat(2))
            threshold.append(np.where(leaf, np.inf, tree.threshold).repeat(2))
            pair = np.empty(2 * n, dtype=np.int64)
            pair[0::2] = np.where(leaf, slots, 2 * (np.asarray(tree.right) + offset))
            pair[1::2] = np.where(leaf, slots, 2 * (np.asarray(tree.left) + offset))
            child.append(pair)
            roots.append(2 * offset)
            depths.append(_depth(tree))
            offset += n
        self.feature = np.concatenate(feature)
        self.threshold = np.concatenate(threshold)
        self.child = np.concatenate(child)
        self.roots = np.asarray(roots, dtype=np.int64)
        self.depth = max(depths)
        self.width = model.numFeatures
        counts = np.zeros((offset, model.numClasses))
        leaves = [c for tree in model.trees for c in tree.value]
        for node, stats in enumerate(leaves):
            if stats:
                counts[node] = stats
        total = _last_of_cumsum(counts, 1)[:, None]
        self.votes = np.where(total != 0, counts / np.where(total == 0, 1.0, total), 0.0)

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """The leaf node id each (row, tree) reaches: shape (n, trees)."""
        n, width = x.shape
        trees = len(self.roots)
        flat = x.ravel()
        features, thresholds, child = self.feature, self.threshold, self.child
        # one row: the roots as they are, and a feature index is its position in ``flat``
        slot = np.tile(self.roots, n) if n > 1 else self.roots
        row_start = np.repeat(np.arange(n) * width, trees) if n > 1 else None
        for _ in range(self.depth):
            feature = features.take(slot)
            if row_start is not None:
                feature += row_start
            slot = child.take(slot + (flat.take(feature) <= thresholds.take(slot)))
        return (slot >> 1).reshape(n, trees)

    def predict(self, x: np.ndarray) -> ScoreResult:
        per_tree = self.votes.take(
            self.leaves(x.reshape(-1, self.width)), axis=0
        )  # (n, trees, classes)
        votes = per_tree.cumsum(axis=1)[:, -1]  # left to right over the trees
        total = votes[:, 0].copy()
        for c in range(1, votes.shape[1]):  # a few classes: sum them in order, no reduction
            total += votes[:, c]
        probability = votes / total[:, None]
        return ScoreResult(votes.argmax(axis=1).astype(np.float64), probability)


def _depth(tree: spec.Tree) -> int:
    """Edges on the longest root-to-leaf path."""
    depth, level = 0, {0}
    while True:
        level = {c for k in level if tree.feature[k] >= 0 for c in (tree.left[k], tree.right[k])}
        if not level:
            return depth
        depth += 1
        if depth >= len(tree.feature):
            raise ValueError("a tree whose children lead back to an ancestor")


class LinearRegression:
    def __init__(self, model: spec.LinearRegression):
        self.coefficients = np.asarray(model.coefficients, dtype=np.float64)
        self.intercept = float(model.intercept)
        self.width = model.numFeatures

    def predict(self, x: np.ndarray) -> ScoreResult:
        matrix = x.reshape(-1, self.width)  # one row: (1, d), so the result is an array too
        return ScoreResult(matrix @ self.coefficients + self.intercept, None)


class KMeans:
    def __init__(self, model: spec.KMeans):
        self.centers = np.asarray(model.centers, dtype=np.float64)
        self.width = model.numFeatures
        self.cosine = model.distanceMeasure == "cosine"
        self.center_norms = np.sqrt((self.centers**2).sum(axis=1))

    def predict(self, x: np.ndarray) -> ScoreResult:
        x = x.reshape(-1, self.width)
        if self.cosine:
            norms = np.sqrt((x**2).sum(axis=1))
            distance = 1.0 - (x @ self.centers.T) / norms[:, None] / self.center_norms
        else:
            diff = x[:, None, :] - self.centers[None, :, :]
            distance = (diff * diff).sum(axis=2)
        return ScoreResult(distance.argmin(axis=1).astype(np.float64), None)  # ties: lowest


Estimator = RandomForest | LinearRegression | KMeans
BY_TYPE: dict[str, type[Estimator]] = {
    "RandomForestClassifier": RandomForest,
    "LinearRegression": LinearRegression,
    "KMeans": KMeans,
}
