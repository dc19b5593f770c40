"""Certificate reload without a restart: renewals while traffic flows, half-written pairs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from prometheus_client import CollectorRegistry

from finops_devtools.devcluster import eventually_async, free_port
from finops_devtools.devcluster.reviews import review, workload
from finops_operator.adapters.certificate_reloader import (
    ServingCertificate,
    TlsPair,
    file_source,
    keep_reloading,
    secret_source,
    serving_certificate,
)
from finops_operator.adapters.certificates import self_signed
from finops_operator.adapters.metrics import OperatorMetrics
from finops_operator.adapters.webhook_server import AdmissionApp, start_site
from finops_operator.domain.config import Config
from finops_operator.domain.policies.label_check import LabelPolicy
from finops_operator.domain.webhook_certificate import secret_body
from tests.support.fakes import FakeKube
from tests.support.tls_files import KubeletMount, Traffic, fresh_pair, post_review, serial


@contextlib.asynccontextmanager
async def serving_files(mount: KubeletMount) -> AsyncIterator[tuple[int, ServingCertificate]]:
    read = file_source(mount.cert, mount.key)
    serving = ServingCertificate(await read(), CollectorRegistry())
    app = AdmissionApp(LabelPolicy(Config()), {}, OperatorMetrics())
    port = free_port()
    runner = await start_site(app.app(), "127.0.0.1", port, serving.context)
    reloading = asyncio.create_task(keep_reloading(serving, read, 0.1))
    try:
        yield port, serving
    finally:
        reloading.cancel()
        await runner.cleanup()


def reloads(serving: ServingCertificate, result: str) -> float:
    value: Any = serving.reloads.labels(result)._value.get()
    return float(value)


async def test_a_kubelet_symlink_swap_is_served_to_new_connections_while_traffic_flows(
    tmp_path: Path,
) -> None:
    mount = KubeletMount(tmp_path)
    first = mount.renew()
    async with serving_files(mount) as (port, serving):
        async with Traffic(port, mount.client_context) as traffic:
            await traffic.until(lambda: len(traffic.serials) >= 3)
            second = mount.renew()
            await traffic.until(lambda: traffic.serials[-1] == second)
            third = mount.renew()
            await traffic.until(lambda: traffic.serials[-1] == third)
            count = len(traffic.serials)
            await traffic.until(lambda: len(traffic.serials) >= count + 3)
        assert traffic.failures == []
        assert traffic.serials[0] == first
        assert set(traffic.serials) == {first, second, third}
        assert serving.serial == third
        assert reloads(serving, "reloaded") == 2


async def test_in_place_writes_half_written_meanwhile_are_served_once_whole(
    tmp_path: Path,
) -> None:
    mount = KubeletMount(tmp_path)
    first = mount.renew()
    async with serving_files(mount) as (port, serving):
        async with Traffic(port, mount.client_context) as traffic:
            await traffic.until(lambda: len(traffic.serials) >= 3)
            # The certificate is new and the key still old for a second: a mismatch.
            second = await asyncio.to_thread(mount.write_in_place, 1.0)
            await traffic.until(lambda: traffic.serials[-1] == second)
            count = len(traffic.serials)
            await traffic.until(lambda: len(traffic.serials) >= count + 3)
        assert traffic.failures == []
        assert set(traffic.serials) == {first, second}
        assert reloads(serving, "invalid") >= 1  # the half-written pair, ignored
        assert reloads(serving, "reloaded") == 1


async def test_an_invalid_pair_is_ignored_logged_and_counted_until_a_valid_one_appears(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mount = KubeletMount(tmp_path)
    first = mount.renew()
    other_cert, _ = fresh_pair()
    _, other_key = fresh_pair()
    async with serving_files(mount) as (port, serving):
        mount.renew((other_cert, other_key))  # a key that is not the certificate's
        await eventually_async(lambda: reloads(serving, "invalid") == 1, timeout=10)
        mount.renew((b"-----BEGIN CERTIFICATE-----\nMIIB", b"garbage"))  # truncated
        await eventually_async(lambda: reloads(serving, "invalid") == 2, timeout=10)
        status, _, served = await asyncio.to_thread(
            post_review, port, "/validate", review(workload("Pod")), mount.client_context()
        )
        assert (status, served, serving.serial) == (200, first, first)
        assert reloads(serving, "invalid") == 2
        assert "Ignored a new webhook certificate" in caplog.text
        good = mount.renew()
        await eventually_async(lambda: serving.serial == good, timeout=10)
        _, _, served = await asyncio.to_thread(
            post_review, port, "/validate", review(workload("Pod")), mount.client_context()
        )
        assert served == good


async def test_a_missing_file_keeps_the_old_pair_and_counts_it(tmp_path: Path) -> None:
    mount = KubeletMount(tmp_path)
    first = mount.renew()
    async with serving_files(mount) as (_, serving):
        (tmp_path / "..data").unlink()
        await eventually_async(lambda: reloads(serving, "unreadable") >= 1, timeout=10)
        assert serving.serial == first
        second = mount.renew()
        await eventually_async(lambda: serving.serial == second, timeout=10)


async def test_the_operator_managed_secret_is_read_again_and_its_ca_passed_on() -> None:
    kube = FakeKube()
    first = self_signed()
    kube.put_secret("finops-system", secret_body("finops-system", "tls", *first))
    read = secret_source(kube, "finops-system", "tls")
    serving = ServingCertificate(await read(), CollectorRegistry())
    changes: list[TlsPair] = []

    async def on_change(pair: TlsPair) -> None:
        changes.append(pair)

    task = asyncio.create_task(keep_reloading(serving, read, 0.05, on_change))
    try:
        await asyncio.sleep(0.2)  # room for a change callback, if one wrongly came
        assert changes == []
        second = self_signed()
        kube.put_secret("finops-system", secret_body("finops-system", "tls", *second))
        await eventually_async(lambda: changes, timeout=10)
        assert serving.serial == serial(second[0])
        assert [pair.ca for pair in changes] == [second[0]]
    finally:
        task.cancel()


async def test_a_failed_ca_update_is_retried_at_the_next_poll() -> None:
    kube = FakeKube()
    kube.put_secret("finops-system", secret_body("finops-system", "tls", *self_signed()))
    read = secret_source(kube, "finops-system", "tls")
    serving = ServingCertificate(await read(), CollectorRegistry())
    calls: list[bytes] = []

    async def on_change(pair: TlsPair) -> None:
        calls.append(pair.ca)
        if len(calls) == 1:
            raise RuntimeError("the API server is away")

    task = asyncio.create_task(keep_reloading(serving, read, 0.05, on_change))
    try:
        second = self_signed()
        kube.put_secret("finops-system", secret_body("finops-system", "tls", *second))
        await eventually_async(lambda: len(calls) >= 2, timeout=10)
        await asyncio.sleep(0.2)  # room for a third call, if one wrongly came
        assert calls == [second[0], second[0]]  # once failed, once done, then no more
    finally:
        task.cancel()


async def test_without_a_source_a_self_signed_pair_is_served_and_never_reloaded() -> None:
    serving, reload = await serving_certificate(CollectorRegistry(), 0.01, None)
    assert reload is None
    assert serving.certificate.issuer == serving.certificate.subject


async def test_the_first_pair_comes_from_first_and_the_reloads_from_read() -> None:
    made, later = self_signed(), self_signed()
    made_serial, later_serial = (
        x509.load_pem_x509_certificate(p[0]).serial_number for p in (made, later)
    )
    reads: list[str] = []

    async def first() -> TlsPair:
        reads.append("first")
        return TlsPair(made[0], made[1], made[0])

    async def read() -> TlsPair:
        reads.append("read")
        return TlsPair(later[0], later[1], later[0])

    serving, reload = await serving_certificate(CollectorRegistry(), 0.01, read, first)
    assert reload is not None and serving.serial == made_serial and reads == ["first"]
    task = asyncio.create_task(reload)
    try:
        await eventually_async(lambda: serving.serial == later_serial)
    finally:
        task.cancel()
