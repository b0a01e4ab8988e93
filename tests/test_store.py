"""The Parquet store round-trips and plain pandas reads it."""

import numpy as np
import pandas as pd

from xaibench.store import SCHEMA, attribution_path, maps_of, read_attributions, write_attributions


def test_roundtrip_and_plain_pandas(tmp_path):
    maps = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    path = attribution_path(tmp_path, "catsdogs", "catsdogs_cnn", "lrp")
    write_attributions(path, {
        "image_id": ["Cat/1", "Dog/2"], "label": [0, 1], "target": [0, 0], "predicted": [0, 0],
        "probability": [0.9, 0.6], "method": ["lrp"] * 2, "model": ["catsdogs_cnn"] * 2,
        "attribution": maps, "runtime_ms": [1.5, 2.5], "params_hash": ["abc"] * 2,
    })
    assert path == tmp_path / "catsdogs" / "catsdogs_cnn" / "lrp.parquet"
    frame = pd.read_parquet(path)  # no project code needed
    assert list(frame.columns) == SCHEMA.names
    row = frame.iloc[1]
    np.testing.assert_array_equal(np.asarray(row.attribution).reshape(row.height, row.width), maps[1])
    np.testing.assert_array_equal(maps_of(read_attributions(path)), maps)
    assert not list(path.parent.glob(".*tmp*"))
