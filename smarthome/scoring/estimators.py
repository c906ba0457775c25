"""The three estimators training fits, each once, vectorised over the rows of a request.

Spark's formulas in float64 (sums left to right, as Scala's loops): a random forest's
probability is its trees' normalised leaf counts summed in tree order, then normalised, and
its class the first argmax; linear regression is ``x @ coefficients + intercept``; KMeans is
the nearest center, searched as Spark searches it (so a point on a boundary between two centers
gets Spark's side). ``predict`` takes the features as the stages
leave them: a matrix (n, d), or for one row (the API's usual request) a vector (d,).
"""

from __future__ import annotations

import math
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


#: Spark keeps a KMeans model's center-to-center bounds when k and the width are below these
#: (``DistanceMeasure.shouldComputeStatistics`` / ``shouldComputeStatisticsLocally``)
STATISTICS_MAX_K = 1000
STATISTICS_MAX_CELLS = 1_000_000


def _squares_sum(values: list[float]) -> float:
    """Left-to-right sum of squares from 0.0 (a loop: ``sum()`` may compensate its adds)."""
    total = 0.0
    for v in values:
        total += v * v
    return total


def _sqdist(a: list[float], b: list[float]) -> float:
    """Spark's ``Vectors.sqdist`` of two dense vectors: (a - b)^2 summed left to right."""
    total = 0.0
    for u, v in zip(a, b, strict=True):
        d = u - v
        total += d * d
    return total


class KMeans:
    """The nearest center, found as Spark's ``KMeansModel.predict`` finds it.

    Euclidean: Spark's search (``EuclideanDistanceMeasure.findClosest``) skips a center by two
    bounds, the norms' difference and a quarter of the squared center-to-center distance, and
    stops early when a point is within the bound of its center. In exact arithmetic the answer
    is the nearest center, ties to the lowest index; in float64 a point on the boundary between
    two centers gets whichever side the bounds' roundings give, so the search is reproduced
    step by step, with Spark's sums of dense vectors (left to right from 0.0). One row is
    searched with Python floats (the same IEEE doubles), many rows with numpy masks.
    """

    def __init__(self, model: spec.KMeans):
        self.centers = np.asarray(model.centers, dtype=np.float64)
        self.width = model.numFeatures
        self.cosine = model.distanceMeasure == "cosine"
        self.center_norms = np.sqrt((self.centers**2).sum(axis=1))
        centers = [list(map(float, c)) for c in model.centers]
        k = len(centers)
        self.center_lists = centers
        self.norms = [math.sqrt(_squares_sum(c)) for c in centers]
        self.norm_array = np.asarray(self.norms)
        self.stats: list[list[float]] | None = None
        if k < STATISTICS_MAX_K and k * k * self.width < STATISTICS_MAX_CELLS:
            # stats[i][j]: (distance(i, j) / 2)^2 as Spark computes it (0.25 * d * d);
            # stats[i][i]: the smallest of row i (NaN for one center, as Spark)
            stats = [[math.inf] * k for _ in range(k)]
            for i in range(k):
                for j in range(i + 1, k):
                    d = math.sqrt(_sqdist(centers[i], centers[j]))
                    stats[i][j] = stats[j][i] = 0.25 * d * d
            for i in range(k):
                stats[i][i] = min((stats[i][j] for j in range(k) if j != i), default=math.nan)
            self.stats = stats
            self.stat_array = np.asarray(stats)

    def predict(self, x: np.ndarray) -> ScoreResult:
        if self.cosine:
            x = x.reshape(-1, self.width)
            norms = np.sqrt((x**2).sum(axis=1))
            distance = 1.0 - (x @ self.centers.T) / norms[:, None] / self.center_norms
            return ScoreResult(distance.argmin(axis=1).astype(np.float64), None)  # ties: lowest
        if x.ndim == 1:
            return ScoreResult(np.array([float(self._closest(x.tolist()))]), None)
        return ScoreResult(self._closest_rows(x.reshape(-1, self.width)).astype(np.float64), None)

    def _closest(self, point: list[float]) -> int:
        """Spark's ``findClosest`` for one point."""
        centers, norms, stats = self.center_lists, self.norms, self.stats
        norm = math.sqrt(_squares_sum(point))
        if stats is None:
            best, index = math.inf, 0
            for i, center in enumerate(centers):
                gap = norms[i] - norm
                if gap * gap < best:
                    d = _sqdist(center, point)
                    if d < best:
                        best, index = d, i
            return index
        best, index = _sqdist(centers[0], point), 0
        if best < stats[0][0]:
            return 0
        for i in range(1, len(centers)):
            gap = norms[i] - norm
            if gap * gap < best and stats[i][index] < best:
                d = _sqdist(centers[i], point)
                if d < stats[i][i]:
                    return i
                if d < best:
                    best, index = d, i
        return index

    def _closest_rows(self, x: np.ndarray) -> np.ndarray:
        """:meth:`_closest` for every row at once: the same steps, masked per row."""
        n = len(x)

        def sqdist(i: int) -> np.ndarray:
            total = np.zeros(n)
            for j, value in enumerate(self.center_lists[i]):
                d = value - x[:, j]
                total = total + d * d
            return total

        norm = np.zeros(n)
        for j in range(self.width):
            norm = norm + x[:, j] * x[:, j]
        norm = np.sqrt(norm)
        k = len(self.center_lists)
        if self.stats is None:
            best, index = np.full(n, np.inf), np.zeros(n, dtype=np.int64)
            for i in range(k):
                gap = self.norm_array[i] - norm
                d = sqdist(i)
                take = (gap * gap < best) & (d < best)
                best, index = np.where(take, d, best), np.where(take, i, index)
            return index
        stats = self.stat_array
        best, index = sqdist(0), np.zeros(n, dtype=np.int64)
        done = best < stats[0, 0]
        for i in range(1, k):
            gap = self.norm_array[i] - norm
            look = ~done & (gap * gap < best) & (stats[i, index] < best)
            if not look.any():
                continue
            d = sqdist(i)
            early = look & (d < stats[i, i])
            take = early | (look & (d < best))
            best, index = np.where(take, d, best), np.where(take, i, index)
            done |= early
        return index


Estimator = RandomForest | LinearRegression | KMeans
BY_TYPE: dict[str, type[Estimator]] = {
    "RandomForestClassifier": RandomForest,
    "LinearRegression": LinearRegression,
    "KMeans": KMeans,
}
