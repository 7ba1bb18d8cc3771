"""`GET /metrics`: the Prometheus exposition of a real server on a loopback socket, the counts it
shows after real batches, and `MeteredStorage`, which times storage calls and changes nothing."""

from __future__ import annotations

import asyncio

import pytest
from attrs import frozen
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

import batchsvc
from batchsvc.errors import BackendError
from batchsvc.metered_storage import MeteredStorage
from batchsvc.metrics import Metrics
from batchsvc.storage import CreatesMany
from batchsvc.testing._base import TENANT, make_memory
from tests.helpers.faults import FaultyStorage
from tests.helpers.promtool import promtool
from tests.helpers.responses import MISSING
from tests.helpers.service import Service, ServiceFactory

CREATE = {"type": "create", "data": {"content": "a memory"}}
READ_MISSING = {"type": "read", "id": MISSING}


@frozen
class Scrape:
    """One parsed exposition: every sample by name and labels."""

    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        return cls(samples)

    def value(self, name: str, **labels: str) -> float:
        """The sample with exactly these labels; 0 when it was never counted."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def labelled(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for (sample, labels) in self.samples if sample == name]


async def scrape(service: Service) -> Scrape:
    response = await service.client.get("/metrics")
    assert response.status == 200, await response.text()
    return Scrape.parse(await response.text())


def requests_to(scraped: Scrape, route: str, status: int, method: str = "POST") -> float:
    return scraped.value(
        "batchsvc_http_requests_total", method=method, route=route, status=str(status)
    )


class TestExposition:
    """`/metrics` is public, in Prometheus' text format, and never spends a rate limit."""

    async def test_answers_without_a_key_in_the_prometheus_format(self, service: Service) -> None:
        response = await service.client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
        assert "RateLimit" not in response.headers
        text = await response.text()
        assert "# TYPE batchsvc_http_requests_total counter" in text
        assert "# TYPE batchsvc_storage_call_duration_seconds histogram" in text

    async def test_scrapes_do_not_spend_the_rate_limit(
        self, service_factory: ServiceFactory
    ) -> None:
        service = await service_factory(rate_limit={"batch_requests": 1, "other_requests": 1})
        for _ in range(3):
            response = await service.client.get("/metrics", headers=service.auth())
            assert response.status == 200
        status, _ = await service.call("GET", "/api/v1/memories")
        assert status == 200

    async def test_promtool_accepts_the_exposition(self, service: Service) -> None:
        checker = promtool()
        await service.batch([CREATE, READ_MISSING], {"continue_on_error": True})
        text = await (await service.client.get("/metrics")).text()
        process = await asyncio.create_subprocess_exec(
            checker,
            "check",
            "metrics",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate(text.encode())
        assert process.returncode == 0, output.decode()


class TestCounts:
    """Counters move by exactly what each request did."""

    async def test_a_200_a_207_and_an_atomic_422(self, service: Service) -> None:
        assert (await service.batch([CREATE]))[0] == 200
        three = [CREATE, READ_MISSING, CREATE]
        assert (await service.batch(three, {"continue_on_error": True}))[0] == 207
        # Sequential, so that the operation after the failure is skipped, never started.
        assert (await service.batch(three, {"atomic": True, "parallel": False}))[0] == 422
        scraped = await scrape(service)

        batches = {
            outcome: scraped.value("batchsvc_batches_total", outcome=outcome)
            for outcome in ("success", "partial", "atomic_failed", "validate_only")
        }
        assert batches == {"success": 1, "partial": 1, "atomic_failed": 1, "validate_only": 0}
        assert scraped.value("batchsvc_batch_operations_count") == 3
        assert scraped.value("batchsvc_batch_operations_sum") == 7

        operations = {
            (labels["type"], labels["status"]): scraped.value("batchsvc_operations_total", **labels)
            for labels in scraped.labelled("batchsvc_operations_total")
        }
        assert operations == {
            ("create", "success"): 3,
            ("read", "failed"): 2,
            ("create", "rolled_back"): 1,
            ("create", "skipped"): 1,
        }
        for status in (200, 207, 422):
            assert requests_to(scraped, "/api/v1/batch", status) == 1
        duration_count = scraped.value(
            "batchsvc_http_request_duration_seconds_count", method="POST", route="/api/v1/batch"
        )
        assert duration_count == 3

    async def test_a_batch_that_fails_whole_is_counted_as_an_error(
        self, service_factory: ServiceFactory
    ) -> None:
        """An atomic batch whose transaction fails answers 503 with no per-operation results;
        it was left out of the batch counts (noted since issue 2)."""
        faulty = FaultyStorage()
        service = await service_factory(storage=faulty)
        faulty.fail("transaction", error=BackendError("the disk is gone"))
        status, body = await service.batch([CREATE, CREATE], {"atomic": True})
        assert status == 503 and body["error"]["code"] == "BACKEND_UNAVAILABLE"
        scraped = await scrape(service)
        assert scraped.value("batchsvc_batches_total", outcome="error") == 1
        assert scraped.value("batchsvc_batch_operations_sum") == 2
        assert requests_to(scraped, "/api/v1/batch", 503) == 1

    async def test_storage_calls_are_timed_inside_and_outside_transactions(
        self, service: Service
    ) -> None:
        await service.batch([CREATE])
        before = (await scrape(service)).value(
            "batchsvc_storage_call_duration_seconds_count", method="create", outcome="ok"
        )
        assert before == 1
        await service.batch([CREATE, READ_MISSING], {"atomic": True, "parallel": False})
        scraped = await scrape(service)
        count = "batchsvc_storage_call_duration_seconds_count"
        assert scraped.value(count, method="create", outcome="ok") == 2
        # An absent memory is an answer (None), not an error.
        assert scraped.value(count, method="get", outcome="ok") == 1
        assert scraped.value(count, method="get", outcome="error") == 0

    async def test_invalid_operations_and_validate_only_batches(self, service: Service) -> None:
        nope = {"type": "nope"}
        await service.batch([nope, CREATE], {"continue_on_error": True})
        await service.batch([nope, {"type": 5}, CREATE], {"validate_only": True})
        scraped = await scrape(service)
        assert scraped.value("batchsvc_operations_total", type="invalid", status="failed") == 1
        assert scraped.value("batchsvc_operations_total", type="create", status="success") == 1
        assert scraped.value("batchsvc_batches_total", outcome="partial") == 1
        assert scraped.value("batchsvc_batches_total", outcome="validate_only") == 1
        assert scraped.value("batchsvc_batch_operations_sum") == 5

    async def test_single_endpoints_count_operations_not_batches(self, service: Service) -> None:
        status, body = await service.call("POST", "/api/v1/memories", json={"content": "x"})
        assert status == 201, body
        status, _ = await service.call("GET", f"/api/v1/memories/{MISSING}")
        assert status == 404
        scraped = await scrape(service)
        assert scraped.value("batchsvc_operations_total", type="create", status="success") == 1
        assert scraped.value("batchsvc_operations_total", type="read", status="failed") == 1
        assert scraped.labelled("batchsvc_batches_total") == []
        assert scraped.value("batchsvc_batch_operations_count") == 0

    async def test_routes_are_labelled_by_template_and_errors_by_final_status(
        self, service: Service
    ) -> None:
        memory_id = await service.create()
        for _ in range(2):
            status, _ = await service.call("GET", f"/api/v1/memories/{memory_id}")
            assert status == 200
        response = await service.client.post("/api/v1/batch", json={"operations": []})
        assert response.status == 401
        response = await service.client.get("/no/such/path")
        assert response.status == 404
        response = await service.client.put("/metrics")
        assert response.status == 405
        scraped = await scrape(service)

        memory = "/api/v1/memories/{id}"
        assert requests_to(scraped, memory, 200, method="GET") == 2
        assert requests_to(scraped, "/api/v1/batch", 401) == 1
        assert requests_to(scraped, "unmatched", 404, method="GET") == 1
        assert requests_to(scraped, "unmatched", 405, method="PUT") == 1
        routes = {labels["route"] for labels in scraped.labelled("batchsvc_http_requests_total")}
        assert not any(memory_id in route or "/no/" in route for route in routes), routes

    async def test_two_apps_keep_separate_counts(self, service_factory: ServiceFactory) -> None:
        busy, idle = await service_factory(), await service_factory()
        await busy.batch([CREATE])
        await busy.batch([CREATE])
        busy_scrape, idle_scrape = await scrape(busy), await scrape(idle)
        assert busy_scrape.value("batchsvc_batches_total", outcome="success") == 2
        assert idle_scrape.value("batchsvc_batches_total", outcome="success") == 0
        assert idle_scrape.labelled("batchsvc_storage_call_duration_seconds_count") == []
        assert requests_to(idle_scrape, "/api/v1/batch", 200) == 0


class TestOperationLatency:
    """`batchsvc_operation_duration_seconds`: each operation that ran, by type, backend and
    status; an operation that never ran (skipped, or validate_only) is not observed."""

    DURATION = "batchsvc_operation_duration_seconds"

    def counts(self, scraped: Scrape) -> dict[tuple[str, str, str], float]:
        return {
            (labels["type"], labels["backend"], labels["status"]): scraped.value(
                f"{self.DURATION}_count", **labels
            )
            for labels in scraped.labelled(f"{self.DURATION}_count")
        }

    async def test_every_operation_that_ran_is_observed_once(self, service: Service) -> None:
        three = [CREATE, READ_MISSING, CREATE]
        assert (await service.batch(three, {"continue_on_error": True}))[0] == 207
        assert (await service.batch(three, {"atomic": True, "parallel": False}))[0] == 422
        await service.batch([CREATE, {"type": "nope"}], {"validate_only": True})
        status, _ = await service.call("POST", "/api/v1/memories", json={"content": "x"})
        assert status == 201
        scraped = await scrape(service)
        assert self.counts(scraped) == {
            ("create", "memory", "success"): 3,  # two of the first batch, the single create
            ("read", "memory", "failed"): 2,
            ("create", "memory", "rolled_back"): 1,  # ran, then undone: it has a latency
        }  # the skipped create and the validate_only batch are absent
        total = sum(self.counts(scraped).values())
        assert scraped.value("batchsvc_operations_total", type="create", status="skipped") == 1
        assert total == 6

    async def test_buckets_resolve_the_in_memory_backends_microseconds(
        self, service: Service
    ) -> None:
        await service.batch([READ_MISSING] * 20, {"continue_on_error": True})
        scraped = await scrape(service)
        labels = {"type": "read", "backend": "memory", "status": "failed"}
        count = scraped.value(f"{self.DURATION}_count", **labels)
        assert count == 20
        # A read of the in-memory backend takes microseconds: most of them fall in a bucket of
        # a millisecond or less, so the histogram tells them apart from a remote store's.
        fast = scraped.value(f"{self.DURATION}_bucket", le="0.001", **labels)
        assert fast >= 10, fast
        assert 0 < scraped.value(f"{self.DURATION}_sum", **labels) < 20 * 0.1

    async def test_a_bulk_call_gives_each_operation_a_share(
        self, service_factory: ServiceFactory
    ) -> None:
        faulty = FaultyStorage(bulk=True)
        service = await service_factory(storage=faulty)
        faulty.delay("create_many", 0.2)
        assert (await service.batch([CREATE] * 4))[0] == 200
        assert faulty.calls["create_many"] == 1
        scraped = await scrape(service)
        labels = {"type": "create", "backend": "memory", "status": "success"}
        assert scraped.value(f"{self.DURATION}_count", **labels) == 4
        # Four shares of one 0.2 s call: about 0.05 s each, summing to the call, not 4 x 0.2 s.
        total = scraped.value(f"{self.DURATION}_sum", **labels)
        assert 0.2 <= total < 0.6, total
        assert scraped.value(f"{self.DURATION}_bucket", le="0.025", **labels) == 0


class TestBatchAndServiceSeries:
    """Batch duration and in-flight batches, retries, skips by reason, rate-limit refusals and
    the build's identity: each moves by exactly what the requests did."""

    async def test_build_info_names_the_version_backend_and_embedder(
        self, service: Service
    ) -> None:
        scraped = await scrape(service)
        labels = {"version": batchsvc.__version__, "backend": "memory", "embedder": "none"}
        assert scraped.value("batchsvc_build_info", **labels) == 1
        assert len(scraped.labelled("batchsvc_build_info")) == 1

    async def test_retries_count_the_attempts_after_the_first(
        self, service_factory: ServiceFactory
    ) -> None:
        faulty = FaultyStorage()
        service = await service_factory(storage=faulty)
        faulty.fail("create", times=2)
        status, body = await service.batch([CREATE, CREATE], {"max_retries": 3})
        assert status == 200, body
        assert [op["attempts"] for op in body["data"]["operations"]] == [3, 1]
        scraped = await scrape(service)
        assert scraped.value("batchsvc_operation_retries_total", type="create") == 2

    async def test_skips_are_counted_by_reason(self, service_factory: ServiceFactory) -> None:
        faulty = FaultyStorage()
        service = await service_factory(storage=faulty)
        # Stops at its first failure: the create after it is skipped.
        assert (await service.batch([READ_MISSING, CREATE], {"parallel": False}))[0] == 207
        # The first create outlives the deadline, so the second never starts.
        faulty.delay("create", 0.5, times=1)
        options = {"timeout": 100, "parallel": False, "continue_on_error": True}
        status, body = await service.batch([CREATE, CREATE], options)
        assert status == 207, body
        assert [op["status"] for op in body["data"]["operations"]] == ["failed", "skipped"]
        scraped = await scrape(service)
        skipped = "batchsvc_operations_skipped_total"
        assert scraped.value(skipped, reason="after_failure") == 1
        assert scraped.value(skipped, reason="deadline") == 1

    async def test_rate_limit_refusals_are_counted_by_policy(
        self, service_factory: ServiceFactory
    ) -> None:
        service = await service_factory(rate_limit={"batch_requests": 1, "other_requests": 1})
        assert [(await service.batch([CREATE]))[0] for _ in range(3)] == [200, 429, 429]
        assert [(await service.call("GET", "/api/v1/memories"))[0] for _ in range(2)] == [200, 429]
        scraped = await scrape(service)
        refused = "batchsvc_rate_limited_requests_total"
        assert (scraped.value(refused, policy="batch"), scraped.value(refused, policy="api")) == (
            2,
            1,
        )

    async def test_batch_duration_and_batches_in_flight(
        self, service_factory: ServiceFactory
    ) -> None:
        faulty = FaultyStorage()
        service = await service_factory(storage=faulty)
        faulty.delay("create", 0.3, times=1)
        slow = asyncio.create_task(service.batch([CREATE]))
        await asyncio.sleep(0.1)
        during = await scrape(service)
        assert (await slow)[0] == 200
        status, _ = await service.call("POST", "/api/v1/memories", json={"content": "x"})
        assert status == 201
        after = await scrape(service)
        assert during.value("batchsvc_batches_in_flight") == 1
        assert after.value("batchsvc_batches_in_flight") == 0
        # The batch only, not the single create; and it took the delay at least.
        assert after.value("batchsvc_batch_duration_seconds_count") == 1
        assert after.value("batchsvc_batch_duration_seconds_sum") >= 0.3


class TestLabels:
    """Label values never come straight from the client."""

    def test_unknown_methods_share_one_label(self) -> None:
        metrics = Metrics()
        for method in ("BREW", "PROPFIND", "GET"):
            metrics.request_finished(method, "unmatched", 405, 0.001)
        scraped = Scrape.parse(metrics.exposition().decode())
        methods = {labels["method"] for labels in scraped.labelled("batchsvc_http_requests_total")}
        assert methods == {"other", "GET"}


def storage_calls(metrics: Metrics, method: str, outcome: str) -> float:
    scraped = Scrape.parse(metrics.exposition().decode())
    return scraped.value(
        "batchsvc_storage_call_duration_seconds_count", method=method, outcome=outcome
    )


class TestMeteredStorage:
    """The wrapper times each call and otherwise behaves exactly like the backend it wraps."""

    async def test_flags_pass_through_and_lifecycle_yields_the_wrapper(self) -> None:
        faulty, metrics = FaultyStorage(), Metrics()
        metered = MeteredStorage(faulty, metrics)
        assert metered.supports_transactions == faulty.supports_transactions
        assert metered.supports_vectors == faulty.supports_vectors
        async with metered as entered:
            assert entered is metered
            await metered.ping()
        assert storage_calls(metrics, "ping", "ok") == 1

    async def test_a_bulk_create_is_offered_only_where_the_backend_has_one(self) -> None:
        metrics = Metrics()
        assert not isinstance(MeteredStorage(FaultyStorage(), metrics), CreatesMany)
        bulky = FaultyStorage(bulk=True)
        memories = [make_memory("one"), make_memory("two")]
        async with MeteredStorage(bulky, metrics) as metered:
            assert isinstance(metered, CreatesMany)
            await metered.create_many(TENANT, [(m, None) for m in memories])
            async with metered.transaction(TENANT) as tx:
                assert isinstance(tx, CreatesMany)
            assert [await metered.get(TENANT, m.id) for m in memories] == memories
        assert bulky.calls["create_many"] == 1
        assert storage_calls(metrics, "create_many", "ok") == 1

    async def test_an_error_is_the_same_object_and_counted(self) -> None:
        faulty, metrics = FaultyStorage(), Metrics()
        error = BackendError("down")
        faulty.fail("get", error=error)
        async with MeteredStorage(faulty, metrics) as metered:
            with pytest.raises(BackendError) as raised:
                await metered.get(TENANT, MISSING)
            assert raised.value is error
            assert await metered.get(TENANT, MISSING) is None
        assert storage_calls(metrics, "get", "error") == 1
        assert storage_calls(metrics, "get", "ok") == 1

    async def test_cancellation_passes_through_and_nothing_changes(self) -> None:
        faulty, metrics = FaultyStorage(), Metrics()
        faulty.delay("create", 10.0, times=1)
        memory = make_memory()
        async with MeteredStorage(faulty, metrics) as metered:
            call = asyncio.create_task(metered.create(TENANT, memory))
            await asyncio.sleep(0.01)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            assert await metered.get(TENANT, memory.id) is None
        assert storage_calls(metrics, "create", "error") == 1

    async def test_transactions_commit_and_roll_back_as_the_backend_does(self) -> None:
        metrics = Metrics()
        kept, undone = make_memory("kept"), make_memory("undone")
        async with MeteredStorage(FaultyStorage(), metrics) as metered:
            async with metered.transaction(TENANT) as tx:
                await tx.create(TENANT, kept)
            with pytest.raises(RuntimeError, match="undo"):
                async with metered.transaction(TENANT) as tx:
                    await tx.create(TENANT, undone)
                    raise RuntimeError("undo")
            assert await metered.get(TENANT, kept.id) == kept
            assert await metered.get(TENANT, undone.id) is None
        assert storage_calls(metrics, "create", "ok") == 2
