"""DashScopeEmulator fault injection and request log, observed through the real SDK (§4.3)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dashscope
import pytest
import requests

from qwen_pg_integrations.testing import DashScopeEmulator, Fault, ScriptedReply


def gen(emu: DashScopeEmulator, **kw: Any) -> Any:
    kw.setdefault("model", "qwen-plus")
    kw.setdefault("prompt", "hello")
    return dashscope.Generation.call(api_key=emu.api_key, base_address=emu.base_url, **kw)


def emb(emu: DashScopeEmulator, **kw: Any) -> Any:
    return dashscope.TextEmbedding.call(
        model="text-embedding-v4", input=["x"], api_key=emu.api_key, base_address=emu.base_url, **kw
    )


def test_429_only_hits_the_chosen_endpoint_and_is_used_up(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.inject(
        Fault(status=429, code="Throttling.RateQuota"), times=2, endpoint="embedding"
    )
    assert gen(dashscope_emulator).status_code == 200
    first, second, third = emb(dashscope_emulator), emb(dashscope_emulator), emb(dashscope_emulator)
    assert (first.status_code, first.code) == (429, "Throttling.RateQuota")
    assert first.message == "Requests rate limit exceeded, please try again later."
    assert second.status_code == 429
    assert third.status_code == 200
    assert dashscope_emulator.pending_faults == 0


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (500, "InternalError"),
        (503, "ModelUnavailable"),
        (429, "Throttling.AllocationQuota"),
        (400, "DataInspectionFailed"),
    ],
)
def test_status_faults_surface_with_status_and_code(
    dashscope_emulator: DashScopeEmulator, status: int, code: str
) -> None:
    dashscope_emulator.inject(Fault(status=status, code=code))
    resp = gen(dashscope_emulator)
    assert (resp.status_code, resp.code) == (status, code)
    assert resp.message


def test_drop_raises_a_connection_error(dashscope_emulator: DashScopeEmulator) -> None:
    # dashscope 2.x resends once on a dropped connection, so two drops are needed.
    dashscope_emulator.inject(Fault(drop=True), times=2)
    with pytest.raises(requests.exceptions.ConnectionError):
        gen(dashscope_emulator)
    assert [r.status for r in dashscope_emulator.requests] == [None, None]
    assert gen(dashscope_emulator).status_code == 200


def test_latency_delays_the_answer(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.inject(Fault(latency=0.3))
    start = time.perf_counter()
    assert gen(dashscope_emulator).status_code == 200
    assert time.perf_counter() - start >= 0.3


def test_emulator_wide_latency(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.latency = 0.2
    start = time.perf_counter()
    emb(dashscope_emulator)
    assert time.perf_counter() - start >= 0.2


def test_timeout_hangs_until_the_client_gives_up(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.inject(Fault(timeout=True, hang_seconds=5), times=2)
    start = time.perf_counter()
    with pytest.raises(requests.exceptions.Timeout):
        gen(dashscope_emulator, request_timeout=0.5)
    assert time.perf_counter() - start < 4


def test_timeout_hang_is_bounded() -> None:
    with DashScopeEmulator() as emu:
        emu.inject(Fault(timeout=True, hang_seconds=0.3), times=2)
        start = time.perf_counter()
        with pytest.raises(requests.exceptions.ConnectionError):
            gen(emu, request_timeout=10)
        assert time.perf_counter() - start < 5


def test_stop_ends_a_hung_call() -> None:
    emu = DashScopeEmulator().start()
    emu.inject(Fault(timeout=True), times=2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            gen(emu, request_timeout=30)
        except requests.exceptions.RequestException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(0.3)
    start = time.perf_counter()
    emu.stop()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert errors
    assert time.perf_counter() - start < 5


def test_midstream_error_surfaces_as_status_400_with_the_code(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.script(ScriptedReply(text="a long enough answer to stream"))
    dashscope_emulator.inject(Fault(midstream=(500, "InternalError"), after_chunks=2))
    chunks = list(gen(dashscope_emulator, stream=True, incremental_output=True))
    assert [c.status_code for c in chunks] == [200, 200, 400]
    assert chunks[-1].code == "InternalError"
    assert chunks[-1].message.startswith("An internal error has occured")


def test_midstream_fault_skips_non_stream_calls(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.inject(Fault(midstream=(500, "InternalError", "boom")))
    assert gen(dashscope_emulator).status_code == 200
    chunks = list(gen(dashscope_emulator, stream=True))
    assert (chunks[-1].status_code, chunks[-1].code, chunks[-1].message) == (
        400,
        "InternalError",
        "boom",
    )


async def test_aio_midstream_error(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.inject(Fault(midstream=(429, "Throttling", "slow down"), after_chunks=1))
    try:
        gen_ = await dashscope.AioGeneration.call(
            model="qwen-plus",
            prompt="hello there",
            stream=True,
            api_key=dashscope_emulator.api_key,
            base_address=dashscope_emulator.base_url,
        )
        chunks = [c async for c in gen_]
    finally:
        await dashscope.close_shared_aio_session()
    assert [c.status_code for c in chunks] == [200, 400]
    assert (chunks[-1].code, chunks[-1].message) == ("Throttling", "slow down")


@pytest.mark.parametrize(("shape", "status"), [("status", 429), ("200", 400), ("json", 429)])
def test_pre_stream_error_shapes(
    dashscope_emulator: DashScopeEmulator, shape: Any, status: int
) -> None:
    dashscope_emulator.inject(Fault(status=429, code="Throttling", sse_error=shape))
    chunks = list(gen(dashscope_emulator, stream=True))
    assert [(c.status_code, c.code) for c in chunks] == [(status, "Throttling")]


def test_drop_in_the_middle_of_a_stream(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(text="x" * 40))
    dashscope_emulator.inject(Fault(drop=True, after_chunks=2))
    received = []
    with pytest.raises(requests.exceptions.RequestException):
        for chunk in gen(dashscope_emulator, stream=True, incremental_output=True):
            received.append(chunk)
    assert len(received) == 2


def test_request_log_records_every_call(dashscope_emulator: DashScopeEmulator) -> None:
    gen(dashscope_emulator, prompt="first")
    emb(dashscope_emulator, text_type="query")
    list(gen(dashscope_emulator, prompt="second", stream=True))
    log = dashscope_emulator.requests
    assert [r.endpoint for r in log] == ["generation", "embedding", "generation"]
    assert [r.stream for r in log] == [False, False, True]
    assert [r.status for r in log] == [200, 200, 200]
    assert log[0].body["input"]["prompt"] == "first"
    assert log[1].model == "text-embedding-v4"
    assert all(k == k.lower() for r in log for k in r.headers)
    dashscope_emulator.clear_requests()
    assert dashscope_emulator.requests == []


def test_reset_clears_scripts_faults_and_log(dashscope_emulator: DashScopeEmulator) -> None:
    dashscope_emulator.script(ScriptedReply(text="never"))
    dashscope_emulator.inject(Fault(status=500), times=3)
    gen(dashscope_emulator)
    dashscope_emulator.reset()
    assert (dashscope_emulator.pending_scripts, dashscope_emulator.pending_faults) == (0, 0)
    assert dashscope_emulator.requests == []
    assert gen(dashscope_emulator).status_code == 200


def test_concurrent_calls_are_all_answered_and_logged(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.inject(Fault(status=500), times=5)

    def one(i: int) -> int:
        if i % 2:
            return int(emb(dashscope_emulator).status_code)
        return int(gen(dashscope_emulator, prompt=f"q{i}").status_code)

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(one, range(40)))
    assert statuses.count(500) == 5
    assert statuses.count(200) == 35
    assert len(dashscope_emulator.requests) == 40


def test_fault_validation() -> None:
    with pytest.raises(ValueError):
        Fault(code="Throttling")
    with pytest.raises(ValueError):
        DashScopeEmulator().inject(Fault(status=500), times=0)


def test_drop_after_chunks_drops_a_non_stream_call_before_answering(
    dashscope_emulator: DashScopeEmulator,
) -> None:
    dashscope_emulator.inject(Fault(drop=True, after_chunks=3), times=2, endpoint="embedding")
    with pytest.raises(requests.exceptions.ConnectionError):
        emb(dashscope_emulator)


def test_max_in_flight_throttles_concurrent_calls() -> None:
    with DashScopeEmulator(max_in_flight=2) as emu:
        emu.inject(Fault(latency=2.0), times=4)
        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = sorted(pool.map(lambda _: int(emb(emu).status_code), range(4)))
        assert statuses == [200, 200, 429, 429]
        assert emu.peak_in_flight == 2
        assert len(emu.requests_for("embedding")) == 4
        assert emu.requests_for("generation") == []
