"""Update bounds: NaN/inf and huge updates rejected, clipping honours the bound."""

import numpy as np

from fedtts.federated.robust import check_update, clip_update, update_norm


def test_rejects_nan_inf_and_huge():
    ok = [np.full(4, 0.1, np.float32)]
    assert check_update(ok, 1.0) is None
    assert "NaN" in check_update([np.array([0.0, np.nan], np.float32)], 1.0)
    assert "NaN" in check_update([np.array([np.inf], np.float32)], 1.0)
    assert "exceeds" in check_update([np.full(4, 1e6, np.float32)], 10.0)
    assert check_update([], 1.0) == "empty update"


def test_clip_bounds_norm_and_keeps_small():
    big = [np.full(3, 10.0, np.float32), np.full(2, -5.0, np.float32)]
    c = clip_update(big, 1.5)
    assert abs(update_norm(c) - 1.5) < 1e-5
    small = [np.full(3, 0.01, np.float32)]
    assert np.allclose(clip_update(small, 1.5)[0], small[0])
