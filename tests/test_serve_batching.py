"""Dynamic batching (serve/batching.py): grouping, splitting, failures, and each request's own
result through a real uvicorn on 127.0.0.1.

Small images (<= 96 px) and a random AdaIN decoder keep it fast on CPU (the ``decoder_file`` and
``client`` fixtures in conftest.py, the helpers in serve_helpers.py).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from conftest import make_image  # noqa: E402
from serve_helpers import config, decode, post  # noqa: E402

from painterly.serve.batching import CancelToken, DynamicBatcher  # noqa: E402
from painterly.serve.runner import BackgroundServer  # noqa: E402


def test_concurrent_requests_are_batched_and_each_gets_its_own_result(decoder_file):
    """4 requests (different contents, styles, alphas, same size) -> one batch of 4, and each
    answer equals that request stylized alone."""
    cfg = config(decoder_file, max_batch=4, batch_wait_ms=30000)  # flushes when full
    cases = [(make_image(96, 64, seed=s), make_image(48, 48, seed=10 + s), a)
             for s, a in ((1, 1.0), (2, 0.5), (3, 0.8), (4, 1.0))]
    with BackgroundServer(cfg) as srv:
        with ThreadPoolExecutor(4) as pool:
            futs = [pool.submit(post, srv.url, c, s, alpha=a) for c, s, a in cases]
            answers = [f.result() for f in futs]
        stats = httpx.get(f"{srv.url}/v1/stats").json()["batching"]
        assert [r.status_code for r in answers] == [200] * 4
        assert stats["batches"] == 1 and stats["items"] == 4, stats
        assert all(r.headers["x-painterly-batch-size"] == "4" for r in answers)
        # Now one at a time: the same pictures.
        srv.service.batcher.max_wait = 0.0
        for (c, s, a), r in zip(cases, answers):
            alone = post(srv.url, c, s, alpha=a)
            assert alone.headers["x-painterly-batch-size"] == "1"
            assert np.abs(decode(alone) - decode(r)).max() <= 2
        outs = [decode(r) for r in answers]
        assert np.abs(outs[0] - outs[1]).mean() > 1  # really different results


def test_dynamic_batcher_groups_by_key_splits_and_isolates_failures():
    calls: list[tuple[str, list[int]]] = []

    def run(key, items):
        calls.append((key, list(items)))
        if -1 in items:
            raise ValueError("bad item")
        return [i * 10 for i in items]

    async def scenario():
        with ThreadPoolExecutor(1) as ex:
            b = DynamicBatcher(run, ex, max_batch=3, max_wait_ms=200)
            jobs = [b.submit("a", i) for i in (1, 2, 3, 4)] + [b.submit("b", 5)]
            res = await asyncio.gather(*jobs)
            bad = await asyncio.gather(b.submit("c", 7), b.submit("c", -1), return_exceptions=True)
            token = CancelToken()
            token.cancel()
            dropped = await asyncio.gather(b.submit("d", 8, token), return_exceptions=True)
            await b.stop()
            return res, bad, dropped, b.stats

    res, bad, dropped, stats = asyncio.run(scenario())
    assert res == [10, 20, 30, 40, 50]
    sizes = sorted(len(items) for key, items in calls[:3])
    assert sizes == [1, 1, 3]  # a: 3 + 1 (max_batch), b: 1
    assert bad[0] == 70 and isinstance(bad[1], ValueError)  # retried alone: one bad, one good
    assert type(dropped[0]).__name__ == "Cancelled" and stats.dropped == 1
    assert not any(8 in items for _, items in calls)
