"""pz2: fine-tune and serve a hybrid assistant (a unified model plus on-demand specialists)."""

__version__ = "0.1.0"
