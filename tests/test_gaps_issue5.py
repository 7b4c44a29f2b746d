"""Issue 5 acceptance gaps: formats from a real run, schema of every CLI report, CI shard
environments end to end, merge refusals and partial merges, baseline in report and CSV,
webhook modes and failures, and the clamfleet command lines written in deploy/ and READMEs.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from aiohttp import web

from orchestrator.cli import UsageError, build_parser
from orchestrator.client import post_webhook
from orchestrator.commands import parse_formats
from orchestrator.inventory import load_inventory
from orchestrator.model import InfectedFile, TargetResult
from orchestrator.report import load_report, validate_report_dict, write_report
from orchestrator.report.model import with_targets
from orchestrator.shard import assign_shards, parse_shard
from orchestrator.simulator import FleetSpec, generate_fleet

from .conftest import Outcome, Sim

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
DEPLOY = ROOT / "deploy"
ALL_FORMATS = "json,csv,html,junit,prometheus,sarif"
SUBCOMMANDS = ("run", "merge", "validate", "simulate", "demo")
TargetKey = tuple[str, str, str]


def mixed_fleet(seed: int = 61) -> FleetSpec:
    """Infected, clean, suspended (skipped) and feature-less (failed) accounts on 3 servers."""
    return generate_fleet(
        servers=3,
        accounts=4,
        infected_ratio=0.4,
        suspended_ratio=0.2,
        no_feature_ratio=0.15,
        seed=seed,
        scan_seconds=0.2,
    )


def token_var(sim: Sim, server: str) -> str:
    return next(k for k in sim.env if server.upper() in k)


def key(t: dict[str, Any]) -> TargetKey:
    return (t["server"], t["account"], t["scan_type"])


def edited_report(source: Path, dest: Path, edit: Callable[[TargetResult], TargetResult]) -> Path:
    """A copy of a written report with its targets edited (the summary recomputed, so the
    report stays one `load_report` accepts)."""
    report = load_report(source)
    write_report(with_targets(report, [edit(t) for t in report.targets]), dest, ["json"])
    return dest / "report.json"


def files_of(report: dict[str, Any]) -> set[tuple[str, str, str, str, str]]:
    return {
        (*key(t), f["path"], f["virus"]) for t in report["targets"] for f in t["infected_files"]
    }


# ---------------------------------------------------------------------------------------------
# Formats: every one, from a real run and from a merge, agrees with report.json


def assert_formats_agree(out: Path) -> dict[str, Any]:
    """Every file of a `--format` run or merge says what report.json says."""
    import jsonschema
    from prometheus_client.parser import text_string_to_metric_families

    report: dict[str, Any] = json.loads((out / "report.json").read_text("utf-8"))
    validate_report_dict(report)
    targets = {key(t): t for t in report["targets"]}
    statuses = {k: t["status"] for k, t in targets.items()}

    # JUnit: one testcase per target; failure when infected, error when failed.
    root = ET.parse(out / "junit.xml").getroot()
    cases = list(root.iter("testcase"))
    assert len(cases) == len(targets) == int(root.get("tests", "-1"))
    verdicts: dict[TargetKey, str] = {}
    for case in cases:
        account, scan_type = (case.get("name") or "").rsplit("/", 1)
        verdict = next((c.tag for c in case), "passed")
        verdicts[(case.get("classname") or "", account, scan_type)] = verdict
    expected = {"infected": "failure", "failed": "error", "skipped": "skipped", "clean": "passed"}
    assert verdicts == {k: expected[s] for k, s in statuses.items()}
    summary = report["summary"]
    assert int(root.get("failures", "-1")) == summary["infected"]
    assert int(root.get("errors", "-1")) == summary["failed"]
    assert int(root.get("skipped", "-1")) == summary["skipped"]

    # SARIF 2.1.0: valid, one result per infected file.
    sarif = json.loads((out / "report.sarif").read_text("utf-8"))
    schema = json.loads((DATA / "sarif-schema-2.1.0.json").read_text("utf-8"))
    jsonschema.Draft4Validator(schema).validate(sarif)
    (run,) = sarif["runs"]
    found = set()
    for result in run["results"]:
        props = result["properties"]
        uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        path = unquote(urlsplit(uri).path)
        found.add((props["server"], props["account"], props["scan_type"], path, result["ruleId"]))
    assert len(run["results"]) == summary["infected_files"]
    assert found == files_of(report)

    # Prometheus textfile: parses, one sample per target, values as in report.json.
    text = (out / "clamfleet.prom").read_text("utf-8")
    families = {f.name: f for f in text_string_to_metric_families(text)}

    def samples(name: str) -> dict[TargetKey, float]:
        return {
            (s.labels["server"], s.labels["account"], s.labels["scan_type"]): s.value
            for s in families[name].samples
        }

    assert samples("clamfleet_infected_files") == {
        k: len(t["infected_files"]) for k, t in targets.items()
    }
    assert samples("clamfleet_target_failed") == {
        k: 1.0 if s == "failed" else 0.0 for k, s in statuses.items()
    }
    scanned = {k: t["scan"]["scanned_file_count"] for k, t in targets.items() if t["scan"]}
    assert samples("clamfleet_scanned_files") == scanned
    (exit_sample,) = families["clamfleet_run_exit_code"].samples
    assert exit_sample.value == summary["exit_code"]
    return report


def test_every_format_of_a_real_run_and_of_its_merge_agrees_with_report_json(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = mixed_fleet()
    sim = simulate(spec)
    whole = cli("run", sim.inventory, "--format", ALL_FORMATS)
    report = assert_formats_agree(whole.out)
    statuses = {t["status"] for t in report["targets"]}
    assert statuses == {"clean", "infected", "skipped", "failed"}, "the fleet exercises all four"
    assert whole.code == 1

    shards = [cli("run", sim.inventory, "--shard", f"{i}/2") for i in (1, 2)]
    merged = cli("merge", *(s.out / "report.json" for s in shards), "--format", ALL_FORMATS)
    merged_report = assert_formats_agree(merged.out)
    assert files_of(merged_report) == files_of(report)
    assert [(key(t), t["status"]) for t in merged_report["targets"]] == [
        (key(t), t["status"]) for t in report["targets"]
    ]


def test_format_selects_the_files_and_an_unknown_one_is_refused_before_any_scan(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=1, accounts=2, infected_ratio=0.5, seed=62, scan_seconds=0.2)
    sim = simulate(spec)
    chosen = cli("run", sim.inventory, "--format", "sarif,junit")
    names = {p.name for p in chosen.out.iterdir()}
    assert {"report.json", "report.sarif", "junit.xml"} <= names
    assert "clamfleet.prom" not in names
    starts = sim.fleet.calls("sim01", function="start_scan")
    refused = cli("run", sim.inventory, "--format", "json,pdf")
    assert refused.code == 3
    assert "pdf" in refused.stderr and "prometheus" in refused.stderr  # names the allowed ones
    assert sim.fleet.calls("sim01", function="start_scan") == starts, "nothing was scanned"
    assert not (refused.out / "report.json").exists()


def test_the_csv_files_of_the_contract_are_written_whatever_format_is_chosen(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=1, accounts=1, infected_ratio=0.0, seed=63, scan_seconds=0.2)
    sim = simulate(spec)
    chosen = cli("run", sim.inventory, "--format", "junit")
    names = {p.name for p in chosen.out.iterdir()}
    assert {"report.json", "targets.csv", "infected.csv", "junit.xml"} <= names


# ---------------------------------------------------------------------------------------------
# The published schema: in the repository, and every report the CLI writes validates


def test_the_published_schema_is_a_valid_json_schema_at_the_documented_path() -> None:
    import jsonschema

    path = ROOT / "orchestrator" / "report" / "schema.json"
    assert "orchestrator/report/schema.json" in (ROOT / "README.md").read_text("utf-8")
    schema = json.loads(path.read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema"]["const"] == "clamfleet.report/1"


def test_every_report_the_cli_writes_validates_against_the_schema(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = mixed_fleet(seed=64)
    sim = simulate(spec)
    monkeypatch.setenv(token_var(sim, "sim03"), "WRONGWRONGWRONGWRONGWRONGWRONG12")
    first = cli("run", sim.inventory)  # sim03: auth, a `*` row
    assert any(t["account"] == "*" for t in first.report["targets"])
    monkeypatch.setenv(token_var(sim, "sim03"), sim.env[token_var(sim, "sim03")])
    compared = cli("run", sim.inventory, "--baseline", first.out / "report.json")
    rerun = cli("run", sim.inventory, "--only-failed", first.out / "report.json")
    folded = cli("merge", first.out / "report.json", rerun.out / "report.json")
    shard = cli("run", sim.inventory, "--shard", "2/3", "--dry-run")
    partial = cli("merge", shard.out / "report.json")
    outcomes = [first, compared, rerun, folded, shard, partial]
    assert [o.code for o in outcomes if o.code not in (0, 1, 2)] == []
    written = sorted(tmp_path.rglob("report.json"))
    assert len(written) >= len(outcomes)
    for path in written:
        validate_report_dict(json.loads(path.read_text("utf-8")))


# ---------------------------------------------------------------------------------------------
# Sharding from CI environments, through the real CLI


@pytest.mark.parametrize(
    ("args", "env_of"),
    [
        (("--shard", "auto/3"), lambda i, n: {"CI_NODE_INDEX": str(i), "CI_NODE_TOTAL": str(n)}),
        (("--shard", "auto/3"), lambda i, n: {"JOB_COMPLETION_INDEX": str(i - 1)}),  # Indexed Job
    ],
    ids=["gitlab", "kubernetes"],
)
def test_ci_environments_select_the_shard_and_the_shards_merge_to_the_fleet(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    env_of: Callable[[int, int], dict[str, str]],
) -> None:
    spec = generate_fleet(servers=6, accounts=1, infected_ratio=0.5, seed=65, scan_seconds=0.2)
    sim = simulate(spec)
    names = [s.name for s in spec.servers]
    reports = []
    for index in (1, 2, 3):
        for var in ("CI_NODE_INDEX", "CI_NODE_TOTAL", "JOB_COMPLETION_INDEX"):
            monkeypatch.delenv(var, raising=False)
        for var, value in env_of(index, 3).items():
            monkeypatch.setenv(var, value)
        outcome = cli("run", sim.inventory, *args)
        assert outcome.code in (0, 1), outcome.stderr
        assert outcome.report["run"]["shard"] == f"{index}/3"
        servers = {t["server"] for t in outcome.report["targets"]}
        shards = assign_shards(load_inventory(sim.inventory).servers, 3)
        assert servers == {n for n in names if shards[n] == index}
        reports.append(outcome.out / "report.json")
    merged = cli("merge", *reports)
    assert merged.report["run"]["shard"] == "1/1"
    assert [t["server"] for t in merged.report["targets"]] == names
    assert "missing shards" not in merged.stdout


# ---------------------------------------------------------------------------------------------
# merge: refusals and partial merges through the CLI


def test_merge_refuses_reports_of_different_fleets_in_one_line_naming_both(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    one = simulate(generate_fleet(servers=2, accounts=1, seed=66, scan_seconds=0.2))
    other = simulate(generate_fleet(servers=3, accounts=1, seed=67, scan_seconds=0.2))
    a = cli("run", one.inventory, "--shard", "1/2").out / "report.json"
    b = cli("run", other.inventory, "--shard", "2/2").out / "report.json"
    refused = cli("merge", a, b)
    assert refused.code == 3
    (line,) = refused.stderr.strip().splitlines()
    assert "different" in line and str(a) in line and str(b) in line
    assert not (refused.out / "report.json").exists()


def test_a_partial_merge_reports_the_exit_code_it_exits_with(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=4, accounts=1, infected_ratio=0.0, seed=68, scan_seconds=0.2)
    sim = simulate(spec)
    one = cli("run", sim.inventory, "--shard", "1/2")
    partial = cli("merge", one.out / "report.json", "--format", "json,prometheus")
    assert partial.code == 2 and "missing shards: 2" in partial.stdout
    assert partial.report["summary"]["exit_code"] == partial.code
    prom = (partial.out / "clamfleet.prom").read_text("utf-8")
    assert re.search(r"^clamfleet_run_exit_code\{[^}]*\} 2$", prom, flags=re.M), prom


# ---------------------------------------------------------------------------------------------
# Baseline: new, recurring and resolved in report.json, infected.csv and the summary


def test_baseline_classifies_new_recurring_and_resolved_in_report_and_csv(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = generate_fleet(servers=2, accounts=3, infected_ratio=0.7, seed=69, scan_seconds=0.2)
    sim = simulate(spec)
    first = cli("run", sim.inventory)
    infected = [t for t in first.report["targets"] if t["infected_files"]]
    assert len(infected) >= 2
    dropped_from, gains_ghost = key(infected[0]), key(infected[1])
    dropped = infected[0]["infected_files"][0]["path"]
    ghost = InfectedFile("/home/ghost/gone.php", "Gone.Virus")

    def edit(t: TargetResult) -> TargetResult:
        k = (t.server, t.account, str(t.scan_type))
        if k == dropped_from:  # absent from the baseline: new now
            return replace(
                t, infected_files=tuple(f for f in t.infected_files if f.path != dropped)
            )
        if k == gains_ghost:  # only in the baseline: resolved now
            return replace(t, infected_files=(*t.infected_files, ghost))
        return t

    baseline = edited_report(first.out / "report.json", tmp_path / "baseline", edit)
    now = cli("run", sim.inventory, "--baseline", baseline)
    validate_report_dict(now.report)
    deltas = {
        (*key(t), f["path"]): f["delta"] for t in now.report["targets"] for f in t["infected_files"]
    }
    assert deltas.pop((*dropped_from, dropped)) == "new"
    assert deltas and set(deltas.values()) == {"recurring"}
    resolved = now.report["resolved"]
    assert [(r["server"], r["account"], r["scan_type"], r["path"]) for r in resolved] == [
        (*gains_ghost, ghost.path)
    ]
    assert now.report["summary"]["delta"] == {"new": 1, "recurring": len(deltas), "resolved": 1}
    rows = now.csv_rows("infected.csv")
    assert sorted(r["delta"] for r in rows) == sorted(
        ["new", "resolved", *["recurring"] * len(deltas)]
    )
    by_path = {r["path"]: r["delta"] for r in rows}
    assert by_path[dropped] == "new" and by_path[ghost.path] == "resolved"


# ---------------------------------------------------------------------------------------------
# Webhook: modes, failures that change nothing, the timeout, the URL kept secret


@dataclass
class Receiver:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    hang: bool = False


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 in its own thread; the path looks like a Slack secret."""
    hook = Receiver(url="")
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def handle(request: web.Request) -> web.Response:
        hook.received.append(await request.json())
        if hook.hang:
            await state["release"].wait()
        return web.Response(status=hook.status, text="ok")

    def serve() -> None:
        loop = asyncio.new_event_loop()
        state["loop"] = loop
        state["release"] = asyncio.Event()
        app = web.Application()
        app.router.add_post("/services/T000/B000/SECRETHOOKPATH", handle)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        state["port"] = runner.addresses[0][1]
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.shutdown())
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    hook.url = f"http://127.0.0.1:{state['port']}/services/T000/B000/SECRETHOOKPATH"
    yield hook
    state["loop"].call_soon_threadsafe(state["release"].set)
    state["loop"].call_soon_threadsafe(state["loop"].stop)
    thread.join(10)


def test_notify_on_modes_post_only_when_asked(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("CLAMFLEET_GAP_HOOK", receiver.url)
    hook = ("--notify-webhook", "CLAMFLEET_GAP_HOOK")
    clean = simulate(
        generate_fleet(servers=1, accounts=2, infected_ratio=0.0, seed=70, scan_seconds=0.2)
    )
    assert cli("run", clean.inventory, *hook, "--notify-on", "infected").code == 0
    assert receiver.received == [], "a clean fleet is no news under --notify-on infected"
    assert cli("run", clean.inventory, *hook, "--notify-on", "always").code == 0
    (always,) = receiver.received
    assert "\n" not in always["text"] and "exit 0" in always["text"]
    assert always["summary"]["exit_code"] == 0

    receiver.received.clear()
    dirty = simulate(
        generate_fleet(servers=1, accounts=3, infected_ratio=1.0, seed=71, scan_seconds=0.2)
    )
    first = cli("run", dirty.inventory)
    same = cli("run", dirty.inventory, "--baseline", first.out / "report.json", *hook,
               "--notify-on", "new")  # fmt: skip
    assert same.code == 1
    assert receiver.received == [], "nothing new since the baseline: no post"
    victim = next(t for t in first.report["targets"] if t["infected_files"])

    def forget_one(t: TargetResult) -> TargetResult:
        if (t.server, t.account, str(t.scan_type)) == key(victim):
            return replace(t, infected_files=t.infected_files[1:])
        return t

    changed = edited_report(first.out / "report.json", tmp_path / "baseline", forget_one)
    news = cli("run", dirty.inventory, "--baseline", changed, *hook, "--notify-on", "new")
    assert news.code == 1
    (posted,) = receiver.received
    assert "(1 new)" in posted["text"]
    assert posted["summary"] == news.report["summary"]


def test_a_failing_webhook_changes_nothing_and_never_shows_its_url(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLAMFLEET_GAP_HOOK", receiver.url)
    sim = simulate(
        generate_fleet(servers=1, accounts=2, infected_ratio=1.0, seed=72, scan_seconds=0.2)
    )
    receiver.status = 500
    broken = cli("run", sim.inventory, "--notify-webhook", "CLAMFLEET_GAP_HOOK")
    assert broken.code == 1
    assert len(receiver.received) == 1
    assert "500" in broken.stderr  # the operator learns the notification failed
    for text in (broken.stdout, broken.stderr, (broken.out / "report.json").read_text()):
        assert "SECRETHOOKPATH" not in text

    receiver.status = 200
    receiver.hang = True  # never answers while the run lasts: the run must not wait for it
    monkeypatch.setattr(post_webhook, "__defaults__", (0.5,))
    hung = cli("run", sim.inventory, "--notify-webhook", "env:CLAMFLEET_GAP_HOOK")
    assert hung.code == 1
    assert "timed out" in hung.stderr
    assert "SECRETHOOKPATH" not in hung.stdout + hung.stderr


def test_notify_webhook_names_an_unset_variable_and_scans_nothing(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = simulate(generate_fleet(servers=1, accounts=1, seed=73, scan_seconds=0.2))
    monkeypatch.delenv("CLAMFLEET_GAP_UNSET", raising=False)
    refused = cli("run", sim.inventory, "--notify-webhook", "CLAMFLEET_GAP_UNSET")
    assert refused.code == 3
    assert "CLAMFLEET_GAP_UNSET" in refused.stderr
    assert sim.fleet.calls("sim01") == 0


# ---------------------------------------------------------------------------------------------
# Every clamfleet command line written in deploy/ and the READMEs is one the CLI accepts


def _after(tokens: list[str], marker: str) -> list[str]:
    return tokens[tokens.index(marker) + 1 :]


def _until_shell_operator(tokens: list[str]) -> list[str]:
    for i, token in enumerate(tokens):
        if token in ("||", "&&", "|", ";") or token.endswith(";"):
            return tokens[:i] + ([token[:-1]] if token.endswith(";") and token != ";" else [])
    return tokens


def _cronjob() -> dict[str, Any]:
    docs = yaml.safe_load_all((DEPLOY / "kubernetes" / "cronjob.yaml").read_text())
    cronjobs: list[dict[str, Any]] = [d for d in docs if d and d["kind"] == "CronJob"]
    (cronjob,) = cronjobs
    return cronjob


def documented_command_lines() -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    cronjob = _cronjob()
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    found.append(("kubernetes cronjob args", list(container["args"])))
    env = {e["name"]: e.get("value", "") for e in container["env"]}
    scripts = next(
        d
        for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "configmap-scripts.yaml").read_text())
        if d
    )
    shard_sh = scripts["data"]["shard.sh"]
    (merge_line,) = [ln for ln in shard_sh.splitlines() if "clamfleet_bg merge" in ln]
    default = re.search(r'MERGE_FORMATS="\$\{MERGE_FORMATS:-([^}]*)\}"', shard_sh)
    assert default is not None
    for formats in (env["MERGE_FORMATS"], default.group(1)):
        argv = _after(shlex.split(merge_line), "clamfleet_bg")
        argv = [{"$@": "shard-0/report.json", "$MERGE_FORMATS": formats}.get(a, a) for a in argv]
        found.append(("shard.sh merge", argv))

    service = (DEPLOY / "systemd" / "clamfleet.service").read_text().replace("\\\n", " ")
    (exec_start,) = [ln for ln in service.splitlines() if ln.startswith("ExecStart=")]
    segment = next(s for s in exec_start.split(";") if "/opt/clamfleet/bin/clamfleet" in s)
    found.append(
        ("systemd ExecStart", _after(shlex.split(segment), "/opt/clamfleet/bin/clamfleet"))
    )

    gitlab = yaml.safe_load((DEPLOY / "ci" / "gitlab-ci.yml").read_text())
    for job in ("scan", "merge"):
        for line in gitlab[job]["script"]:
            tokens = shlex.split(line)
            if "clamfleet" in tokens:
                found.append((f"gitlab {job}", _until_shell_operator(_after(tokens, "clamfleet"))))

    github = yaml.safe_load((DEPLOY / "ci" / "github-actions.yml").read_text())
    for name, job in github["jobs"].items():
        for step in job["steps"]:
            script = step.get("run", "").replace("\\\n", " ")
            for line in script.splitlines():
                if "docker run" in line:
                    argv = _after(shlex.split(line), "$CLAMFLEET_IMAGE")
                    found.append((f"github {name}", [a.replace("$SHARD", "1") for a in argv]))

    deploy_readme = (DEPLOY / "README.md").read_text().replace("\\\n", " ")
    for line in deploy_readme.splitlines():
        if line.startswith("docker run "):
            found.append(("deploy/README docker run", _after(shlex.split(line), _image(line))))
    for source in (deploy_readme, (ROOT / "README.md").read_text()):
        for span in re.findall(r"`([^`\n]*\bclamfleet [a-z]+\b[^`\n]*)`", source):
            tokens = shlex.split(span.replace("$?", ""))
            starts = [
                i
                for i, t in enumerate(tokens[:-1])
                if t.endswith("clamfleet") and tokens[i + 1] in SUBCOMMANDS
            ]
            argv = _until_shell_operator(tokens[starts[0] + 1 :]) if starts else []
            if len(argv) > 1 and not argv[1].startswith("-"):  # a whole line, not a fragment
                found.append((f"README: {span}", argv))
    return found


def _image(line: str) -> str:
    return next(t for t in shlex.split(line) if t.startswith("ghcr.io/"))


def test_every_documented_clamfleet_command_line_is_accepted_by_the_cli() -> None:
    lines = documented_command_lines()
    where = {w.split(":")[0] for w, _ in lines}
    assert {"kubernetes cronjob args", "shard.sh merge", "systemd ExecStart"} <= where
    assert {"gitlab scan", "gitlab merge", "github scan", "github merge"} <= where
    parser = build_parser()
    for source, argv in lines:
        try:
            args = parser.parse_args(argv)
        except UsageError as exc:
            pytest.fail(f"{source}: {shlex.join(argv)}: {exc}")
        if getattr(args, "formats", None):
            parse_formats(args.formats)  # a ConfigError names the unknown format
        shard = getattr(args, "shard", None)
        if shard and re.fullmatch(r"(\d+|auto)/\d+", shard):
            parse_shard(shard)
