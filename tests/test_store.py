"""The Parquet store round-trips and plain pandas reads it."""

import numpy as np
import pandas as pd

from xaibench.store import SCHEMA, attribution_path, maps_of, read_attributions, store_rows, write_attributions


def test_roundtrip_and_plain_pandas(tmp_path):
    maps = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    path = attribution_path(tmp_path, "catsdogs", "catsdogs_cnn", "lrp")
    write_attributions(path, store_rows(
        image_ids=["Cat/1", "Dog/2"], labels=[0, 1], targets=[0, 0], predicted=[0, 0], probabilities=[0.9, 0.6],
        method="lrp", model="catsdogs_cnn", maps=maps, runtimes_ms=[1.5, 2.5], params_hash="abc"))
    assert path == tmp_path / "catsdogs" / "catsdogs_cnn" / "lrp.parquet"
    frame = pd.read_parquet(path)  # no project code needed
    assert list(frame.columns) == SCHEMA.names
    row = frame.iloc[1]
    np.testing.assert_array_equal(np.asarray(row.attribution).reshape(row.height, row.width), maps[1])
    np.testing.assert_array_equal(maps_of(read_attributions(path)), maps)
    assert not list(path.parent.glob(".*tmp*"))


def test_rows_are_built_in_one_place_and_a_missing_column_is_refused(tmp_path):
    rows = store_rows(image_ids=[7], labels=[1], targets=[1], predicted=[1], probabilities=[0.5], method="gad_ig",
                      model="m", maps=np.ones((1, 2, 2)), runtimes_ms=[3.0], params_hash="h", variant="gad",
                      boxes=[[0, 0, 1, 1]], sampling_log=[(120, True)], axiom_errors=[0.01])
    assert rows["image_id"] == ["7"] and rows["variant"] == ["gad"] and rows["samples"] == [120]
    write_attributions(tmp_path / "a.parquet", rows)
    row = read_attributions(tmp_path / "a.parquet").iloc[0]
    assert row.box.tolist() == [0, 0, 1, 1] and bool(row.stopped_early) and row.axiom_error == 0.01
    del rows["params_hash"]
    import pytest

    with pytest.raises(ValueError, match=r"lack columns \['params_hash'\]: build them with store_rows"):
        write_attributions(tmp_path / "b.parquet", rows)
    assert not (tmp_path / "b.parquet").exists()
