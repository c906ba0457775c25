"""When a scored record is also an alert, and why, in words (DESIGN §15).

Two thresholds, both inclusive: predicted inefficient with a probability of at least
``inefficient_probability``, and at least ``malfunctions`` predicted malfunction incidents.
The defaults come from the dataset and the set trained on it (seed 42):

* 0.96: of the dataset's 5,403 rows, 11% are predicted inefficient that surely, and 99.5%
  of those are inefficient (63% are predicted inefficient at all, at 95.6%): about one
  device in nine, nearly always right;
* 3.5: the dataset's mean of 2.07 incidents plus one standard deviation (1.42); the top
  value, 4, is what 21% of the devices report. The regressor trained on this dataset
  predicts the mean (2.05) for every device (its manifest says it does not beat that
  baseline), so with it no record reaches 3.5: no malfunction alert is better than one
  the model cannot back.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_INEFFICIENT_PROBABILITY = 0.96
DEFAULT_MALFUNCTIONS = 3.5


@dataclass(frozen=True)
class AlertRules:
    """The two thresholds; ``reasons`` says which a prediction crosses."""

    inefficient_probability: float = DEFAULT_INEFFICIENT_PROBABILITY
    malfunctions: float = DEFAULT_MALFUNCTIONS

    def reasons(self, efficiency_class: int, probability: float, malfunctions: float) -> list[str]:
        """One sentence per threshold crossed; empty when the prediction is no alert."""
        out = []
        if efficiency_class == 0 and probability >= self.inefficient_probability:
            out.append(
                f"predicted not efficient with probability {probability:.3f}"
                f" (alert at >= {self.inefficient_probability:g})"
            )
        if malfunctions >= self.malfunctions:
            out.append(
                f"predicted {malfunctions:.2f} malfunction incidents"
                f" (alert at >= {self.malfunctions:g})"
            )
        return out
