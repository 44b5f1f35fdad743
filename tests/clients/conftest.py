"""The training tests' small generated data set, shared with the simulator's tests."""

from tests.training.conftest import small, small_dir

__all__ = ["small", "small_dir"]
