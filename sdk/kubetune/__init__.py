"""kubetune: hyperparameter tuning for PyTorch models, on Kubernetes or on one machine."""

__version__ = "0.1.0"
