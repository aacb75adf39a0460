import numpy as np
import pytest

from fastadapt.data.trajectory import Dataset, Trajectory


def make_trajectory(T=40, J=3, seed=0, **overrides):
    rng = np.random.default_rng(seed)
    fields = dict(
        t=np.arange(T) * 0.01, q=rng.normal(size=(T, J)), qd=rng.normal(size=(T, J)),
        qdd=rng.normal(size=(T, J)), tau=rng.normal(size=(T, J)), robot="toy", dt=0.01, phase="p",
    )
    fields.update(overrides)
    return Trajectory(**fields)


@pytest.fixture
def dataset():
    return Dataset((make_trajectory(seed=0), make_trajectory(T=30, seed=1, phase="q")))
