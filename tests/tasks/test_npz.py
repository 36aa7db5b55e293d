"""NpzWriter: an .npz streamed member by member, np.load-able, all or nothing."""

from __future__ import annotations

import numpy as np
import pytest

from alexnet.tasks.npz import NpzWriter


def test_streamed_members_load_with_numpy(tmp_path):
    out = tmp_path / "f.npz"
    a = np.arange(12, dtype=np.float32).reshape(4, 3)
    with NpzWriter(out) as npz:
        s = npz.stream("features", (4, 3), np.float32)
        s.write(a[:3])
        s.write(a[3:])
        s.close()
        npz.add("names", np.array(["x", "yz"]))
    z = np.load(out, allow_pickle=False)
    np.testing.assert_array_equal(z["features"], a)
    assert z["names"].tolist() == ["x", "yz"]


def test_an_error_leaves_no_file(tmp_path):
    out = tmp_path / "f.npz"
    with pytest.raises(ValueError, match="does not fit"), NpzWriter(out) as npz:
        s = npz.stream("features", (2, 3), np.float32)
        s.write(np.zeros((3, 3)))  # one row too many
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="1 rows written, 2 declared"), NpzWriter(out) as npz:
        s = npz.stream("features", (2, 3), np.float32)
        s.write(np.zeros((1, 3)))
        s.close()
    assert list(tmp_path.iterdir()) == []
