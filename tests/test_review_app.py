"""Review app through FastAPI's TestClient: listing, filters, sort, detail, verdicts."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rope_inspect.errors import ConfigError
from rope_inspect.review.app import ReviewSettings, create_app
from rope_inspect.review.security import CSRF_COOKIE
from rope_inspect.storage import DefectQuery, DefectRecord, StoreView
from rope_inspect.storage.sample import write_sample_store

BASE = "http://127.0.0.1:8080"


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("review") / "store"
    write_sample_store(root, count=18, seed=4)
    return root


@pytest.fixture
def store(sample_store: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(sample_store, copy)
    return copy


@pytest.fixture
def client(store: Path) -> Iterator[TestClient]:
    app = create_app(ReviewSettings(store=store, page_size=10))
    with TestClient(app, base_url=BASE) as test_client:
        yield test_client


def all_records(store: Path) -> list[DefectRecord]:
    view = StoreView.open(store)
    records = view.list_defects(DefectQuery(limit=1000)).items
    view.close()
    return records


def card_ids(html: str) -> list[str]:
    return re.findall(r'<article class="card" data-id="([^"]+)"', html)


def csrf_of(client: TestClient) -> str:
    client.get("/")
    token = client.cookies.get(CSRF_COOKIE)
    assert token
    return token


def test_grid_newest_first_with_paging(client: TestClient, store: Path) -> None:
    records = all_records(store)  # newest first
    page1 = client.get("/")
    assert page1.status_code == 200
    assert card_ids(page1.text) == [r.id for r in records[:10]]
    assert "page 1 of 2" in page1.text
    page2 = client.get("/?page=2")
    assert card_ids(page2.text) == [r.id for r in records[10:]]
    assert page1.text.count('<svg class="chart"') == 3
    assert "threshold 0.5" in page1.text  # from the store's calibration meta


def test_filters_and_sort(client: TestClient, store: Path) -> None:
    records = all_records(store)
    line_b = client.get("/api/defects", params={"line": "line-b"}).json()
    assert {item["id"] for item in line_b["items"]} == {
        r.id for r in records if r.line == "line-b"
    }
    cut = sorted(r.score for r in records)[9]
    high = client.get("/api/defects", params={"score_min": cut, "sort": "score"}).json()
    assert [i["score"] for i in high["items"]] == sorted(
        (r.score for r in records if r.score >= cut), reverse=True
    )
    oldest = sorted(records, key=lambda r: r.epoch)
    since = oldest[3].time[:19]
    until = oldest[7].time[:19]
    window = client.get("/api/defects", params={"since": since, "until": until}).json()
    assert {i["id"] for i in window["items"]} == {r.id for r in oldest[3:7]}
    along = client.get("/?sort=position")
    positions = [r.position_m for r in sorted(records, key=lambda r: r.position_m or 0)]
    shown = re.findall(r"<dt>Position</dt><dd>([\d.]+) m", along.text)
    assert [float(p) for p in shown] == pytest.approx(positions[:10], abs=0.006)


def test_bad_filter_values_are_reported(client: TestClient) -> None:
    page = client.get("/?score_min=high&since=yesterday&verdict=maybe")
    assert page.status_code == 200
    assert "is not a number" in page.text and "ignored" in page.text
    assert client.get("/api/defects?score_min=high").status_code == 400


def test_verdict_needs_csrf(client: TestClient, store: Path) -> None:
    target = all_records(store)[0].id
    body = {"id": target, "verdict": "defect", "reviewer": "anna"}
    assert client.post("/api/verdict", json=body).status_code == 403
    token = csrf_of(client)
    wrong = client.post("/api/verdict", json=body, headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    assert client.get("/api/defects").json()["counts"]["defect"] == 0

    ok = client.post("/api/verdict", json=body, headers={"X-CSRF-Token": token})
    assert ok.status_code == 200
    assert ok.json()["counts"]["defect"] == 1
    stored = next(r for r in all_records(store) if r.id == target)
    assert stored.verdict == "defect" and stored.verdict_by == "anna"
    assert stored.verdict_at and stored.verdict_at.endswith("Z")

    undo = {"id": target, "verdict": None}
    assert client.post(
        "/api/verdict", json=undo, headers={"X-CSRF-Token": token}
    ).is_success
    assert next(r for r in all_records(store) if r.id == target).verdict is None
    bad = {"id": target, "verdict": "maybe"}
    assert (
        client.post(
            "/api/verdict", json=bad, headers={"X-CSRF-Token": token}
        ).status_code
        == 422
    )
    ghost = {"id": "20200101T000000000000Z-00000000", "verdict": "defect"}
    assert (
        client.post(
            "/api/verdict", json=ghost, headers={"X-CSRF-Token": token}
        ).status_code
        == 404
    )


def test_form_verdict_without_script(client: TestClient, store: Path) -> None:
    target = all_records(store)[1].id
    form = {"id": target, "verdict": "false_alarm", "next": "/?verdict=none"}
    assert client.post("/verdict", data=form).status_code == 403
    form["csrf_token"] = csrf_of(client)
    client.cookies.set("ri_reviewer", "bob")
    done = client.post("/verdict", data=form, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/?verdict=none"
    stored = next(r for r in all_records(store) if r.id == target)
    assert stored.verdict == "false_alarm" and stored.verdict_by == "bob"
    form["next"] = "https://elsewhere.example/"
    away = client.post("/verdict", data=form, follow_redirects=False)
    assert away.headers["location"] == "/"


def test_detail_and_files(client: TestClient, store: Path) -> None:
    record = all_records(store)[2]
    page = client.get(f"/defect/{record.id}?back=/%3Fpage%3D2")
    assert page.status_code == 200
    assert record.frame and record.frame in page.text and 'class="bbox"' in page.text
    assert 'href="/?page=2"' in page.text
    crop = client.get(f"/files/{record.crop}")
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/png"
    assert crop.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get("/defect/20200101T000000000000Z-00000000").status_code == 404
    assert client.get("/defect/not-an-id").status_code == 404


def test_counts_follow_verdicts(client: TestClient, store: Path) -> None:
    token = csrf_of(client)
    ids = [r.id for r in all_records(store)[:3]]
    for defect_id, verdict in zip(
        ids, ["defect", "false_alarm", "false_alarm"], strict=True
    ):
        client.post(
            "/api/verdict",
            json={"id": defect_id, "verdict": verdict},
            headers={"X-CSRF-Token": token},
        )
    page = client.get("/")
    assert re.search(r'data-count="defect">1<', page.text)
    assert re.search(r'data-count="false_alarm">2<', page.text)
    assert re.search(r'data-count="none">15<', page.text)
    only = client.get("/api/defects?verdict=false_alarm").json()
    assert {i["id"] for i in only["items"]} == set(ids[1:])


def test_threshold_from_calibration_file(store: Path, tmp_path: Path) -> None:
    calibration = tmp_path / "line.yaml"
    calibration.write_text(
        "line: line-a\npixel_threshold: 0.42\nimage_threshold: 0.6\nmm_per_px: 0.1\n"
    )
    app = create_app(ReviewSettings(store=store, calibration=calibration))
    with TestClient(app, base_url=BASE) as client:
        assert "threshold 0.42" in client.get("/").text
    with pytest.raises(ConfigError):
        create_app(ReviewSettings(store=store, calibration=tmp_path / "missing.yaml"))
