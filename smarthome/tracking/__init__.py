"""Optional tracking of the model sets in MLflow (docs/operations.md, "MLflow").

- ``mlflow_runs``: every published set as an MLflow run, its three models as registered model
  versions, and the ``champion`` alias on the versions of the served set.
"""
