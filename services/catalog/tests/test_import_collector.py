"""An import validates, maps and writes its rows with the cyclic garbage collector paused, and
the collector runs again once the last import in the process ends, whatever happened; one that
was switched off before stays off."""

from __future__ import annotations

import gc
import threading

import pytest
from catalog_helpers import who
from test_import_steps import IMPORT, NDJSON, jsonl, rows

from techbridge_catalog.service import imports


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_the_collector_resumes_after_the_last_of_overlapping_imports(collector_on):
    first, second = imports.collector_paused(), imports.collector_paused()
    first.__enter__()
    assert not gc.isenabled()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()  # the other import still runs
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_the_collector_resumes_after_a_failure(collector_on):
    with pytest.raises(RuntimeError), imports.collector_paused():
        raise RuntimeError("store unavailable")
    assert gc.isenabled()


def test_a_collector_switched_off_before_stays_off(collector_on):
    gc.disable()
    with imports.collector_paused():
        pass
    assert not gc.isenabled()


def test_pauses_from_several_threads_resume_once_all_ended(collector_on):
    entered, release = threading.Barrier(5), threading.Event()

    def work():
        with imports.collector_paused():
            entered.wait()
            release.wait()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    entered.wait()
    assert not gc.isenabled()
    release.set()
    for t in threads:
        t.join()
    assert gc.isenabled()


async def test_an_import_maps_and_writes_with_the_collector_paused(api, monkeypatch, collector_on):
    monkeypatch.setattr(imports, "PIPELINE_ROWS", 2)
    monkeypatch.setattr(imports, "POSTGRES_STEP_ROWS", 2)
    seen: list[bool] = []
    real_map, real_write = imports.map_rows, imports._write
    monkeypatch.setattr(imports, "map_rows", lambda items, *more: seen.append(gc.isenabled()) or real_map(items, *more))

    async def write(uow, actor, mapped):
        seen.append(gc.isenabled())
        await real_write(uow, actor, mapped)

    monkeypatch.setattr(imports, "_write", write)
    org = (await api.register_org())["organisation_id"]
    r = await api.post(IMPORT, who(org, "institution"), content=jsonl(rows(5)), headers=NDJSON)
    assert r.status_code == 200 and r.json()["imported"] == 5
    assert len(seen) == 6 and not any(seen)  # three mappings, three writes
    assert gc.isenabled()
