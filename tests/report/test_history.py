"""The history database on its own: nights recorded from reports built in memory (no fleet),
what it gives the next report (per-target delta, first seen, nights seen, the trend), what it
refuses (another SQLite file, a newer schema), its migration path, pruning, one writer at a time,
and that the report carries it through every format and `merge`."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError
from orchestrator.model import (
    ErrorInfo,
    ErrorKind,
    InfectedFile,
    RunInfo,
    ScanStats,
    ScanType,
    Status,
    Target,
    TargetResult,
)
from orchestrator.report import (
    apply_baseline,
    build_report,
    history_schema,
    load_report,
    merge_reports,
    render,
    report_from_dict,
    report_to_dict,
    validate_report_dict,
    write_report,
)
from orchestrator.report import history as store
from orchestrator.report.model import Report

START = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
Files = Mapping[tuple[str, str], Sequence[str]]  # (server, account) -> infected paths


def night(
    n: int,
    files: Files,
    *,
    failed: Sequence[tuple[str, str]] = (),
    run_id: str | None = None,
    shard: str = "1/1",
    rerun_of: str | None = None,
    seconds: float = 60.0,
) -> Report:
    """Night `n`: one `home` target per (server, account) of `files`, those in `failed` failed."""
    started = START + timedelta(days=n)
    results = []
    for (server, account), paths in files.items():
        target = Target(server, account, ScanType.HOME)
        if (server, account) in failed:
            error = ErrorInfo(ErrorKind.UNREACHABLE, "connection refused")
            results.append(TargetResult(target, Status.FAILED, error=error))
            continue
        found = tuple(InfectedFile(f"/home/{account}/{p}", "Php.Webshell-1") for p in paths)
        results.append(
            TargetResult(
                target,
                Status.INFECTED if found else Status.CLEAN,
                scan=ScanStats(None, 10, 2_000_000_000, 10),
                infected_files=found,
                started_at=started,
                finished_at=started + timedelta(seconds=seconds),
                duration_s=seconds,
            )
        )
    servers = tuple(dict.fromkeys(s for s, _ in files))
    run = RunInfo(
        id=run_id or f"night-{n}",
        tool_version="test",
        started_at=started,
        finished_at=started + timedelta(hours=1),
        inventory="/etc/clamfleet/web.yaml",
        shard=shard,
        dry_run=True,
        servers=servers,
        fleet_id="fleet",
        rerun_of=rerun_of,
        shard_servers=servers,
    )
    return build_report(run, results)


def record_night(path: Path, report: Report) -> Report:
    annotated = store.annotate(report, path)
    store.record(annotated, path)
    return annotated


def files_of(report: Report) -> dict[str, InfectedFile]:
    return {f.path: f for t in report.targets for f in t.infected_files}


@pytest.fixture
def hist(tmp_path: Path) -> Path:
    return store.prepare_history(tmp_path / "history.sqlite")


# ---------------------------------------------------------------------------------------------
# What the next night gets


def test_the_first_night_gets_first_seen_but_no_delta(hist: Path) -> None:
    first = record_night(hist, night(0, {("web01", "alice"): ["public_html/x.php"]}))
    assert first.summary.delta is None and not first.compared
    (f,) = files_of(first).values()
    assert f.first_seen == START and f.nights_seen == 1 and f.delta is None
    assert first.history is not None and len(first.history.nights) == 1


def test_each_target_is_compared_with_its_own_last_scan_not_with_a_failed_night(
    hist: Path,
) -> None:
    a, b = ("web01", "alice"), ("web01", "bob")
    record_night(hist, night(0, {a: ["x.php", "y.php"], b: ["m.php"]}))
    # night 1: bob's target fails: his file is neither resolved nor forgotten
    one = record_night(hist, night(1, {a: ["x.php"], b: []}, failed=[b]))
    assert one.summary.delta is not None
    assert [r.path for r in one.resolved] == ["/home/alice/y.php"]
    # night 2: bob is compared with night 0 (his last scan): m.php recurring, n.php new
    two = record_night(hist, night(2, {a: ["x.php"], b: ["m.php", "n.php"]}))
    seen = files_of(two)
    assert seen["/home/bob/m.php"].delta == "recurring"
    assert seen["/home/bob/n.php"].delta == "new"
    assert seen["/home/alice/x.php"].delta == "recurring"
    assert two.resolved == ()
    assert two.summary.delta is not None and (
        two.summary.delta.new,
        two.summary.delta.resolved,
    ) == (1, 0)
    # first seen and nights seen: bob's m.php was reported on nights 0 and 2, not 1
    assert seen["/home/bob/m.php"].first_seen == START
    assert seen["/home/bob/m.php"].nights_seen == 2
    assert seen["/home/alice/x.php"].nights_seen == 3
    assert seen["/home/bob/n.php"].first_seen == START + timedelta(days=2)


def test_a_removed_file_that_comes_back_is_new_but_keeps_its_first_seen(hist: Path) -> None:
    a = ("web01", "alice")
    record_night(hist, night(0, {a: ["x.php"]}))
    gone = record_night(hist, night(1, {a: []}))
    assert [r.path for r in gone.resolved] == ["/home/alice/x.php"]
    back = files_of(record_night(hist, night(2, {a: ["x.php"]})))["/home/alice/x.php"]
    assert back.delta == "new" and back.first_seen == START and back.nights_seen == 2


def test_an_explicit_baseline_wins_over_the_history(hist: Path) -> None:
    a = ("web01", "alice")
    record_night(hist, night(0, {a: ["x.php"]}))
    baseline = night(-5, {a: []})  # the operator compares with some other report
    tonight = apply_baseline(night(1, {a: ["x.php"]}), baseline)
    annotated = store.annotate(tonight, hist)
    f = files_of(annotated)["/home/alice/x.php"]
    assert f.delta == "new", "the baseline said new; the history would have said recurring"
    assert f.nights_seen == 2 and f.first_seen == START


def test_a_resumed_run_replaces_its_entry_and_is_not_its_own_past(hist: Path) -> None:
    a = ("web01", "alice")
    record_night(hist, night(0, {a: ["x.php"]}))
    partial = record_night(hist, night(1, {a: ["x.php"]}, run_id="run-b"))
    again = record_night(hist, night(1, {a: ["x.php", "z.php"]}, run_id="run-b"))
    assert files_of(partial)["/home/alice/x.php"].nights_seen == 2
    assert files_of(again)["/home/alice/x.php"].nights_seen == 2, "not counted twice"
    assert [r.run_id for r in store.nights(hist, 10)] == ["run-b", "night-0"]


def test_the_trend_covers_thirty_nights_and_per_server_seconds_per_gb(hist: Path) -> None:
    for n in range(34):
        last = record_night(
            hist, night(n, {("web01", "alice"): ["x.php"] * (n % 2)}, seconds=10.0 + n)
        )
    trend = last.history
    assert trend is not None
    assert len(trend.nights) == 30
    assert trend.nights[-1].run_id == "night-33" and trend.nights[0].run_id == "night-4"
    points = trend.servers["web01"]
    assert len(points) == 30
    assert points[-1].seconds_per_gb == pytest.approx(43.0 / 2.0)  # 43 s over 2 GB
    # a rerun of failed targets is no night of the trend
    rerun = night(34, {("web01", "alice"): []}, run_id="rerun", rerun_of="night-33")
    assert store.annotate(rerun, hist).history.nights[-2].run_id == "night-33"  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------
# The report carries it: JSON (schema, round trip), CSV, HTML, merge


def test_history_fields_round_trip_and_match_the_schema(hist: Path, tmp_path: Path) -> None:
    a = ("web01", "alice")
    record_night(hist, night(0, {a: ["x.php"]}))
    report = record_night(hist, night(1, {a: ["x.php", "y.php"]}))
    doc = report_to_dict(report)
    validate_report_dict(doc)
    assert report_from_dict(json.loads(json.dumps(doc)), "r.json") == report
    files = {f["path"]: f for f in doc["targets"][0]["infected_files"]}
    assert files["/home/alice/x.php"]["first_seen"] == "2026-03-01T02:00:00Z"
    assert files["/home/alice/x.php"]["nights_seen"] == 2
    assert doc["history"]["nights"][-1]["new"] == 1

    out = render(report, ["json", "csv", "html"])
    header, *rows = out["infected.csv"].splitlines()
    assert ",message,delta," in header and header.endswith(",canary,first_seen,nights_seen")
    assert any(",recurring," in r and r.endswith(",2026-03-01T02:00:00Z,2") for r in rows)
    html = out["report.html"]
    assert "History: the last nights" in html and "Scan time per GB" in html
    assert "<th>first seen</th>" in html


def test_the_first_nights_csv_has_the_same_columns_as_the_next(hist: Path) -> None:
    first = record_night(hist, night(0, {("web01", "alice"): ["x.php"]}))
    header = render(first, ["csv"])["infected.csv"].splitlines()[0]
    assert ",message,delta," in header and header.endswith(",canary,first_seen,nights_seen")


def test_merge_carries_first_seen_and_nights_seen_from_the_shards(
    hist: Path, tmp_path: Path
) -> None:
    record_night(hist, night(0, {("web01", "alice"): ["x.php"], ("web02", "bob"): ["y.php"]}))
    one = store.annotate(night(1, {("web01", "alice"): ["x.php"]}, run_id="s1", shard="1/2"), hist)
    two = store.annotate(night(1, {("web02", "bob"): ["y.php"]}, run_id="s2", shard="2/2"), hist)
    for i, shard in enumerate((one, two)):
        shard = replace(shard, run=replace(shard.run, servers=("web01", "web02")))
        write_report(shard, tmp_path / f"shard-{i}", ["json"])
    shards = [load_report(tmp_path / f"shard-{i}" / "report.json") for i in range(2)]
    merged = merge_reports(shards).report
    assert {f.nights_seen for f in files_of(merged).values()} == {2}
    assert {f.first_seen for f in files_of(merged).values()} == {START}
    header, *rows = render(merged, ["csv"])["infected.csv"].splitlines()
    assert ",delta," in header and header.endswith(",first_seen,nights_seen")
    assert all(r.endswith(",2026-03-01T02:00:00Z,2") for r in rows) and len(rows) == 2


# ---------------------------------------------------------------------------------------------
# What it refuses, its migration path, pruning, one writer at a time


def test_another_sqlite_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    other = tmp_path / "journal.sqlite"
    with closing(sqlite3.connect(other)) as db:
        db.execute("CREATE TABLE meta (key TEXT)")
        db.commit()
    with pytest.raises(ConfigError, match="not a clamfleet history"):
        store.prepare_history(other)
    garbage = tmp_path / "notes.txt"
    garbage.write_text("these are not the droids\n" * 100)
    with pytest.raises(ConfigError, match="not a clamfleet history"):
        store.prepare_history(garbage)
    assert garbage.read_text().startswith("these are not")


def test_a_history_of_a_newer_schema_is_refused_with_a_clear_error(hist: Path) -> None:
    with closing(sqlite3.connect(hist)) as db:
        db.execute(f"PRAGMA user_version = {history_schema.SCHEMA_VERSION + 1}")
        db.commit()
    with pytest.raises(ConfigError) as info:
        store.annotate(night(0, {("web01", "alice"): []}), hist)
    message = info.value.render()
    assert "newer clamfleet" in message and "upgrade clamfleet" in message
    assert str(hist) in message


def test_an_older_history_is_migrated_in_place(hist: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record_night(hist, night(0, {("web01", "alice"): ["x.php"]}))
    version = history_schema.SCHEMA_VERSION
    # the next version of the schema adds a column: a history of this version is migrated
    monkeypatch.setattr(history_schema, "SCHEMA_VERSION", version + 1)
    monkeypatch.setitem(history_schema.MIGRATIONS, version, "ALTER TABLE runs ADD COLUMN note TEXT")
    later = record_night(hist, night(1, {("web01", "alice"): ["x.php"]}))
    assert files_of(later)["/home/alice/x.php"].nights_seen == 2
    with closing(sqlite3.connect(hist)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == version + 1
        columns = [row[1] for row in db.execute("PRAGMA table_info(runs)")]
    assert "note" in columns


def test_pruning_keeps_the_newest_nights_and_first_seen_within_them(hist: Path) -> None:
    a = ("web01", "alice")
    for n in range(8):  # enough files that the pruned nights fill many pages
        record_night(hist, night(n, {a: ["x.php", *(f"n{n}/{i}.php" for i in range(300))]}))
    assert store.prune(hist, 3) == (5, 3)
    assert [r.run_id for r in store.nights(hist, 10)] == ["night-7", "night-6", "night-5"]
    f = files_of(record_night(hist, night(8, {a: ["x.php"]})))["/home/alice/x.php"]
    assert f.first_seen == START + timedelta(days=5) and f.nights_seen == 4
    with closing(sqlite3.connect(hist)) as db:  # nothing of the pruned nights is left behind
        assert db.execute("SELECT count(DISTINCT run) FROM findings").fetchone()[0] == 4
        assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0, "the space is given back"
    with pytest.raises(ConfigError):
        store.prune(hist, 0)


def test_one_writer_at_a_time_the_second_waits_for_the_first(
    hist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    holding, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            with closing(history_schema.connect(hist, create=False)) as db:
                db.execute("BEGIN IMMEDIATE")
                db.execute("SELECT count(*) FROM runs").fetchone()
                holding.set()
                release.wait(10)
                db.execute("COMMIT")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            holding.set()

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    monkeypatch.setattr(history_schema, "BUSY_SECONDS", 0.2)
    with pytest.raises(ConfigError, match="in use by another clamfleet"):
        store.record(night(0, {("web01", "alice"): []}), hist)
    monkeypatch.setattr(history_schema, "BUSY_SECONDS", 30.0)
    release_later = threading.Timer(0.3, release.set)
    release_later.start()
    store.record(night(0, {("web01", "alice"): []}), hist)  # waits for the holder, then writes
    holder.join(10)
    assert errors == []
    assert [r.run_id for r in store.nights(hist, 5)] == ["night-0"]


def test_a_missing_history_is_an_error_for_reading_and_created_for_a_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        store.nights(tmp_path / "none.sqlite", 5)
    with pytest.raises(ConfigError, match="does not exist"):
        store.prepare_history(tmp_path / "no-such-dir" / "h.sqlite")
    created = store.prepare_history(tmp_path / "h.sqlite")
    assert store.nights(created, 5) == []
