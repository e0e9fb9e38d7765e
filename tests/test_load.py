"""A short load run (bench/load.py's, 4 clients x 40 requests across the three tabs): no errors, the right
labels. The long run is `python bench/load.py` (16 clients, 500 requests), not part of the suite."""

from __future__ import annotations

import sys

from conftest import REPO, rss_mb

sys.path.insert(0, str(REPO / "bench"))
import load  # noqa: E402

# First image examples of each label that the shipped CIFAR-10 model gets right (it calls cat-1 a bird and
# dog-1 a cat): the load test checks that answers stay right under concurrency, not the model's accuracy.
RIGHT_IMAGES = ["airplane-1", "automobile-1", "bird-1", "deer-1", "frog-1", "horse-1", "ship-1", "truck-1"]


def test_four_clients_forty_requests_no_errors_right_labels(app_server, app_client):
    before = rss_mb(app_server.pid)
    result = load.drive(app_server, load.workload(40, images=RIGHT_IMAGES), clients=4)
    report = load.summarise(result)
    assert report["errors"] == 0, report["first_errors"]
    assert report["wrong_labels"] == 0, report["first_wrong"]
    assert {tab: t["requests"] for tab, t in report["per_tab"].items()} == {"image": 14, "text": 13, "speech": 13}
    assert rss_mb(app_server.pid) - before < 300
