import gzip

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fastadapt.data.digits import binary_task, load_digits, load_mnist, read_idx
from fastadapt.data.trajectory import DataError
from fastadapt.models.digits import DigitNet, cross_entropy


def _write_idx(path, array, gz=False):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def test_mnist_idx_files_load_plain_and_gzipped(tmp_path):
    images = np.arange(3 * 4 * 5).reshape(3, 4, 5) % 256
    labels = np.array([1, 2, 1])
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images, gz=True)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    digits = load_mnist(tmp_path)
    np.testing.assert_allclose(digits.images, images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(digits.labels, labels)
    x, y = binary_task(digits, 1, 2)
    assert x.shape == (3, 4, 5, 1) and y.tolist() == [0, 1, 0]


def test_bad_mnist_input_gets_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST directory not found"):
        load_mnist(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"'train-images-idx3-ubyte' \(or '.*\.gz'\) not found"):
        load_mnist(tmp_path)
    (tmp_path / "bad").write_bytes(b"\x12\x34\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    _write_idx(tmp_path / "short", np.zeros((4, 2)))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-3])
    with pytest.raises(DataError, match=r"header says shape \(4, 2\) \(8 bytes\) but the file holds 5"):
        read_idx(tmp_path / "short")
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 2, 2)))
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(2))
    with pytest.raises(DataError, match=r"\(2,\) labels for 3 images"):
        load_mnist(tmp_path)
    with pytest.raises(DataError, match="digit 7 is not in"):
        binary_task(load_mnist.__globals__["Digits"](np.zeros((2, 2, 2)), np.array([1, 2]), "toy"), 1, 7)


def test_bundled_digits_and_the_classifier_learn_one_vs_two():
    digits = load_digits()
    assert digits.images.shape == (1797, 8, 8) and digits.images.max() == 1.0
    x, y = binary_task(digits, 1, 2)
    net = DigitNet()
    params = net.init(jax.random.PRNGKey(0))
    logits = net.apply(params, jnp.asarray(x))
    assert logits.shape == (x.shape[0], 2)
    # cross-entropy against its closed form for uniform logits: log 2
    assert float(cross_entropy(jnp.zeros((4, 2)), jnp.array([0, 1, 1, 0]))) == pytest.approx(np.log(2), rel=1e-6)
