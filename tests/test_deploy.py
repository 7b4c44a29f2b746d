"""Offline checks of the deployment recipes in deploy/ (no Docker, no cluster, no network).

- Kubernetes manifests against the bundled schemas of `kubernetes-validate` (strict), for the
  oldest supported minor and the newest bundled one, plus the sharding/merge semantics; the
  pod entry script (shard.sh, from its ConfigMap) is run with a fake `clamfleet`.
- CI files against check-jsonschema's bundled schemas (run with the network unusable).
- systemd units with `systemd-analyze verify` (when installed) and by parsing them; the
  ExecStart shell snippet is run with stand-ins for clamfleet and the state directory.
- The Dockerfile and the `docker run` line documented in deploy/README.md.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
CI = DEPLOY / "ci"
SYSTEMD = DEPLOY / "systemd"
IMAGE = "ghcr.io/example/clamfleet:0.1.0"
SUBCOMMANDS = {"run", "merge", "validate", "simulate", "demo"}
# Oldest Kubernetes the manifests support (backoffLimitPerIndex, podFailurePolicy FailIndex).
K8S_MIN_VERSION = "1.29"
# Anything that looks like a real credential written inline.
SECRET_PATTERNS = [
    re.compile(r"\b[A-Z0-9]{32}\b"),  # WHM/cPanel API tokens are 32 upper-case alphanumerics
    re.compile(r"(?i)(token|password|secret)\s*[:=]\s*['\"]?[A-Za-z0-9+_-]{16,}"),
    re.compile(r"(?i)authorization:\s*(whm|cpanel|basic)\s+\S+"),
]


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _manifests() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for p in _manifests() for d in _docs(p) if d["kind"] == kind]


def _cronjob() -> dict[str, Any]:
    (cronjob,) = _by_kind("CronJob")
    return cronjob


def _container(cronjob: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any]
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return container


def _assert_no_inline_secrets(text: str, where: str) -> None:
    for pattern in SECRET_PATTERNS:
        match = pattern.search(text)
        assert match is None, f"{where}: looks like an inline secret: {match.group(0)!r}"


def test_secret_patterns_catch_inline_tokens() -> None:
    fake = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # 32 chars, shaped like a WHM token
    for text in (f"token: {fake}", f"WHM_TOKEN={fake.lower()}", "Authorization: whm root:x"):
        with pytest.raises(AssertionError):
            _assert_no_inline_secrets(text, "sample")
    _assert_no_inline_secrets("token_file: /run/credentials/x/whm_token", "sample")


# ---------------------------------------------------------------------------------------------
# Kubernetes


def test_kubernetes_manifests_exist() -> None:
    kinds = {d["kind"] for p in _manifests() for d in _docs(p)}
    assert {"Secret", "ConfigMap", "PersistentVolumeClaim", "CronJob"} <= kinds


@pytest.mark.parametrize("path", _manifests(), ids=lambda p: p.name)
def test_kubernetes_manifest_schema(path: Path) -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version

    versions = {K8S_MIN_VERSION, latest_version()}
    for doc in _docs(path):
        for version in sorted(versions):
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{path.name} {doc['kind']} (Kubernetes {version}): {exc.message}")


def test_kustomization_lists_manifests_but_not_the_example_secret() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    resources = set(kustomization["resources"])
    assert all((K8S / r).is_file() for r in resources)
    # Applying the directory must never overwrite the real Secret with the placeholder.
    assert "secret.example.yaml" not in resources
    assert resources == {p.name for p in _manifests()} - {"secret.example.yaml"}
    assert {i["name"] for i in kustomization["images"]} == {IMAGE.split(":")[0]}


def test_secret_example_is_a_placeholder() -> None:
    (secret,) = _by_kind("Secret")
    assert "data" not in secret
    (value,) = secret["stringData"].values()
    assert "REPLACE" in value and "NOT-A-REAL" in value


def test_no_literal_secrets_in_manifests() -> None:
    for path in _manifests():
        if path.name == "secret.example.yaml":
            continue
        text = path.read_text()
        _assert_no_inline_secrets(text, path.name)
        for doc in _docs(path):
            assert doc["kind"] != "Secret", f"{path.name}: a Secret outside the example"


def test_cronjob_schedule_and_indexed_job() -> None:
    cronjob = _cronjob()
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0
    assert spec["successfulJobsHistoryLimit"] >= 1
    assert spec["failedJobsHistoryLimit"] >= 1
    job = spec["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    container = _container(cronjob)
    args = container["args"]
    shards = int(args[args.index("--shard") + 1].removeprefix("auto/"))
    assert args[args.index("--shard") + 1] == f"auto/{shards}"
    assert job["completions"] == job["parallelism"] == shards
    env = {e["name"]: e for e in container["env"]}
    assert env["SHARDS"]["value"] == str(shards)
    assert job["activeDeadlineSeconds"] > int(env["MERGE_WAIT_SECONDS"]["value"])
    assert job["template"]["spec"]["restartPolicy"] == "Never"


def test_cronjob_args_use_kubernetes_expansion_and_per_job_paths() -> None:
    container = _container(_cronjob())
    args = container["args"]
    assert args[:2] == ["run", "/config/inventory.yaml"]
    # `$(date)` would be looked up as an env var named "date": only $(VAR) of defined vars.
    # shard.sh adds --out: Kubernetes cannot turn the 0-based index into the 1-based shard.
    assert "--out" not in args
    env = [e["name"] for e in container["env"]]
    for arg in args:
        for var in re.findall(r"\$\((\w+)\)", arg):
            assert var in env or var == "JOB_COMPLETION_INDEX", f"{arg}: ${var} is not defined"
    env_by_name = {e["name"]: e for e in container["env"]}
    assert env_by_name["RUN_DIR"]["value"] == "/reports/$(JOB_NAME)"
    # $(JOB_NAME) in RUN_DIR only expands if JOB_NAME comes first.
    assert env.index("JOB_NAME") < env.index("RUN_DIR")
    assert env_by_name["JOB_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['batch.kubernetes.io/job-name']"
    )
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/config"]["readOnly"] is True
    assert "/reports" in mounts
    assert container["command"] == ["/bin/sh", "/scripts/shard.sh"]
    assert container["image"] == IMAGE


def test_cronjob_token_comes_from_secret_and_inventory_references_it() -> None:
    container = _container(_cronjob())
    (secret,) = _by_kind("Secret")
    tokens = [e for e in container["env"] if e["name"] == "WHM_TOKEN"]
    assert len(tokens) == 1
    assert "value" not in tokens[0]
    ref = tokens[0]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == secret["metadata"]["name"]
    assert ref["key"] in secret["stringData"]
    for entry in container["env"]:
        assert "value" not in entry or not re.search(r"(?i)token|passw", entry["name"])
    (config,) = [c for c in _by_kind("ConfigMap") if "inventory.yaml" in c["data"]]
    inventory = yaml.safe_load(config["data"]["inventory.yaml"])
    assert inventory["defaults"]["auth"]["token_env"] == "WHM_TOKEN"
    assert "token" not in inventory["defaults"]["auth"]
    yaml.safe_load(config["data"]["policy.yaml"])


def test_cronjob_security_context_and_resources() -> None:
    cronjob = _cronjob()
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = _container(cronjob)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"requests", "limits"} <= container["resources"].keys()
    assert "memory" in container["resources"]["limits"]
    # readOnlyRootFilesystem: /tmp must be a volume.
    assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}
    (pvc,) = _by_kind("PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    claims = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert claims[0]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]


def test_cronjob_exit_codes_are_not_retried_as_failures() -> None:
    job = _cronjob()["spec"]["jobTemplate"]["spec"]
    rules = job["podFailurePolicy"]["rules"]
    by_codes = {tuple(r["onExitCodes"]["values"]): r["action"] for r in rules if "onExitCodes" in r}
    assert by_codes[(1, 2)] == "FailIndex"  # verdicts: do not rescan
    assert by_codes[(3,)] == "FailJob"  # bad inventory: every shard fails alike
    # An internal error is no verdict: counted as a failure (retried once), never FailIndex'd
    # with the verdicts nor ignored.
    assert by_codes[(70,)] == "Count"
    assert all(70 not in codes for codes, action in by_codes.items() if action != "Count")
    assert rules[0]["action"] == "Ignore"  # disruptions first: a drained pod is retried
    assert rules[0]["onPodConditions"][0]["type"] == "DisruptionTarget"
    assert job["backoffLimitPerIndex"] >= 1
    name = _container(_cronjob())["name"]
    assert all(r["onExitCodes"]["containerName"] == name for r in rules if "onExitCodes" in r)


# --- shard.sh, run for real with a fake clamfleet ---------------------------------------------

FAKE_CLAMFLEET = """\
#!/bin/sh
# Records its arguments; `run` writes --out/report.json, `merge` writes --out/report.json.
echo "$*" >> "$FAKE_LOG"
cmd=$1; shift
out=""
while [ $# -gt 0 ]; do
  if [ "$1" = --out ]; then out=$2; fi
  shift
done
mkdir -p "$out" && echo '{}' > "$out/report.json"
if [ "$cmd" = merge ]; then exit "${FAKE_MERGE_RC:-0}"; fi
exit "${FAKE_RUN_RC:-0}"
"""


def _shard_script(tmp_path: Path) -> Path:
    (config,) = [c for c in _by_kind("ConfigMap") if "shard.sh" in c.get("data", {})]
    script = tmp_path / "shard.sh"
    script.write_text(config["data"]["shard.sh"])
    return script


@pytest.fixture
def shard_env(tmp_path: Path) -> dict[str, str]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "clamfleet"
    fake.write_text(FAKE_CLAMFLEET)
    fake.chmod(0o755)
    return {
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(tmp_path / "calls.log"),
        "RUN_DIR": str(tmp_path / "reports" / "clamfleet-29000000"),
        "SHARDS": "3",
        "POLL_SECONDS": "0.05",
        "MERGE_WAIT_SECONDS": "30",
    }


def _run_shard(
    tmp_path: Path, env: dict[str, str], index: int, **extra: str
) -> subprocess.CompletedProcess[str]:
    args = ["run", "/config/inventory.yaml", "--shard", "auto/3"]
    return subprocess.run(
        ["/bin/sh", str(_shard_script(tmp_path)), *args],
        env={**env, "JOB_COMPLETION_INDEX": str(index), **extra},
        capture_output=True,
        text=True,
        timeout=20,
    )


def _calls(env: dict[str, str]) -> list[str]:
    log = Path(env["FAKE_LOG"])
    return log.read_text().splitlines() if log.exists() else []


def _merge_call(env: dict[str, str]) -> list[str]:
    """The arguments of the last `clamfleet merge` (the history is pruned after it)."""
    return [c for c in _calls(env) if c.startswith("merge ")][-1].split()


def test_shard_script_is_valid_posix_sh(tmp_path: Path) -> None:
    subprocess.run(["/bin/sh", "-n", str(_shard_script(tmp_path))], check=True)


@pytest.mark.parametrize("code", [0, 1, 2, 3, 70])
def test_shard_script_other_index_exits_with_its_verdict(
    tmp_path: Path, shard_env: dict[str, str], code: int
) -> None:
    proc = _run_shard(tmp_path, shard_env, 2, FAKE_RUN_RC=str(code))
    assert proc.returncode == code, proc.stderr
    calls = _calls(shard_env)
    assert len(calls) == 1 and calls[0].startswith("run /config/inventory.yaml")
    # JOB_COMPLETION_INDEX 2 is shard 3/3: its folder has the number the report's run.shard has.
    assert calls[0].endswith(f"--out {shard_env['RUN_DIR']}/shard-3")
    marker = Path(shard_env["RUN_DIR"]) / "shard-3" / ".exit-code"
    # 3 and 70 are no verdicts: no "done" marker, the merge must not count that shard finished.
    assert marker.exists() == (code in (0, 1, 2))


def test_shard_script_index0_merges_all_shards(tmp_path: Path, shard_env: dict[str, str]) -> None:
    for index, code in ((1, "1"), (2, "0")):
        assert _run_shard(tmp_path, shard_env, index, FAKE_RUN_RC=code).returncode == int(code)
    proc = _run_shard(tmp_path, shard_env, 0, FAKE_MERGE_RC="1")
    assert proc.returncode == 1, proc.stderr  # index 0 reports the whole fleet's verdict
    merge = _merge_call(shard_env)
    run_dir = Path(shard_env["RUN_DIR"])
    assert merge[0] == "merge"
    assert merge[1:4] == [str(run_dir / f"shard-{i}" / "report.json") for i in (1, 2, 3)]
    assert merge[merge.index("--out") + 1] == str(run_dir / "merged")
    latest = run_dir.parent / "latest"
    assert latest.is_symlink() and os.readlink(latest) == run_dir.name


def test_shard_script_index0_merges_what_is_there_after_the_deadline(
    tmp_path: Path, shard_env: dict[str, str]
) -> None:
    assert _run_shard(tmp_path, shard_env, 1).returncode == 0
    proc = _run_shard(tmp_path, shard_env, 0, MERGE_WAIT_SECONDS="0", FAKE_MERGE_RC="2")
    assert proc.returncode == 2
    assert "gave up waiting for shard(s) 3" in proc.stdout
    merge = _merge_call(shard_env)
    assert [a for a in merge if a.endswith("report.json")] == [
        f"{shard_env['RUN_DIR']}/shard-{i}/report.json" for i in (1, 2)
    ]


def test_shard_script_retried_index0_does_not_rescan(
    tmp_path: Path, shard_env: dict[str, str]
) -> None:
    for index in (1, 2):
        assert _run_shard(tmp_path, shard_env, index).returncode == 0
    shard0 = Path(shard_env["RUN_DIR"]) / "shard-1"  # index 0 is shard 1
    shard0.mkdir(parents=True)
    (shard0 / "report.json").write_text("{}")
    (shard0 / ".exit-code").write_text("1\n")
    before = len(_calls(shard_env))
    proc = _run_shard(tmp_path, shard_env, 0)
    assert proc.returncode == 0, proc.stderr
    assert [c.split()[0] for c in _calls(shard_env)[before:]] == ["merge", "history"]


def test_shard_script_keeps_the_newest_run_folders_and_nothing_else_is_touched(
    tmp_path: Path, shard_env: dict[str, str]
) -> None:
    reports = Path(shard_env["RUN_DIR"]).parent
    reports.mkdir(parents=True)
    old_runs = [reports / f"clamfleet-2800000{i}" for i in range(5)]
    for age, run in enumerate(reversed(old_runs), start=1):  # old_runs[-1] is the newest
        (run / "merged").mkdir(parents=True)
        os.utime(run, (time.time() - 86400 * age, time.time() - 86400 * age))
    foreign = [reports / "lost+found", reports / "operator notes"]
    for path in foreign:
        path.mkdir()
        os.utime(path, (0, 0))  # older than every run: still not a run folder
    for index in (1, 2):
        assert _run_shard(tmp_path, shard_env, index).returncode == 0
    proc = _run_shard(tmp_path, shard_env, 0, CLAMFLEET_KEEP="3")
    assert proc.returncode == 0, proc.stderr
    kept = {p.name for p in reports.iterdir() if p.is_dir() and not p.is_symlink()}
    this_run = Path(shard_env["RUN_DIR"]).name
    assert kept == {this_run, old_runs[-1].name, old_runs[-2].name, "lost+found", "operator notes"}
    assert os.readlink(reports / "latest") == this_run


def test_shard_script_removes_nothing_when_keep_is_zero_or_the_merge_wrote_no_report(
    tmp_path: Path, shard_env: dict[str, str]
) -> None:
    reports = Path(shard_env["RUN_DIR"]).parent
    for i in range(3):
        (reports / f"clamfleet-2800000{i}" / "merged").mkdir(parents=True)
    for index in (1, 2):
        assert _run_shard(tmp_path, shard_env, index).returncode == 0
    assert _run_shard(tmp_path, shard_env, 0, CLAMFLEET_KEEP="0").returncode == 0
    assert len([p for p in reports.iterdir() if not p.is_symlink()]) == 4
    # A merge that crashed before writing its report keeps every earlier run.
    fake = Path(shard_env["PATH"].split(os.pathsep)[0]) / "clamfleet"
    fake.write_text('#!/bin/sh\necho "$*" >> "$FAKE_LOG"\n[ "$1" = merge ] && exit 70\nexit 0\n')
    env = {**shard_env, "RUN_DIR": str(reports / "clamfleet-29000001")}
    proc = _run_shard(tmp_path, env, 0, CLAMFLEET_KEEP="1", MERGE_WAIT_SECONDS="0")
    assert proc.returncode == 70
    assert _calls(env)[-1].startswith("merge ")
    runs = [p for p in reports.iterdir() if not p.is_symlink() and (p / "merged").is_dir()]
    assert len(runs) == 4


def test_shard_script_forwards_sigterm(tmp_path: Path, shard_env: dict[str, str]) -> None:
    """sh is PID 1 in the pod: SIGTERM must reach clamfleet, and the pod must exit 143 (retried),
    not with a verdict code, and without marking the shard done."""
    slow = Path(shard_env["PATH"].split(os.pathsep)[0]) / "clamfleet"
    slow.write_text(
        textwrap.dedent("""\
            #!/bin/sh
            trap 'echo got-term >> "$FAKE_LOG"; exit 2' TERM
            echo started >> "$FAKE_LOG"
            while :; do sleep 0.05; done
            """)
    )
    script = _shard_script(tmp_path)
    proc = subprocess.Popen(
        ["/bin/sh", str(script), "run", "inv.yaml"],
        env={**shard_env, "JOB_COMPLETION_INDEX": "1"},
    )
    log = Path(shard_env["FAKE_LOG"])
    for _ in range(200):
        if log.exists() and "started" in log.read_text():
            break
        time.sleep(0.02)
    proc.terminate()
    assert proc.wait(timeout=10) == 143
    assert "got-term" in log.read_text()
    assert not (Path(shard_env["RUN_DIR"]) / "shard-2" / ".exit-code").exists()


# ---------------------------------------------------------------------------------------------
# CI


def _check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    # Bundled schemas only; any network attempt would hit a dead proxy and fail loudly.
    dead = "http://127.0.0.1:9"
    env = {**os.environ, "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "NO_PROXY": ""}
    env.update(http_proxy=dead, https_proxy=dead, no_proxy="")
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("schema", "name"),
    [("vendor.github-workflows", "github-actions.yml"), ("vendor.gitlab-ci", "gitlab-ci.yml")],
)
def test_ci_file_schema(schema: str, name: str, tmp_path: Path) -> None:
    proc = _check_jsonschema(schema, CI / name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The validator does reject a broken file (so the pass above means something).
    broken = tmp_path / name
    data = yaml.safe_load((CI / name).read_text())
    job = data["jobs"]["merge"] if "jobs" in data else data["merge"]
    job["needs"] = {"not": "valid"}
    broken.write_text(yaml.safe_dump(data))
    assert _check_jsonschema(schema, broken).returncode == 1


def test_gitlab_parallel_scan_and_merge() -> None:
    data = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    scan, merge = data["scan"], data["merge"]
    shards = scan["parallel"]
    assert isinstance(shards, int) and shards > 1
    script = " ".join(scan["script"])
    assert "clamfleet run" in script
    assert "reports/shard-$CI_NODE_INDEX" in script
    # Only --shard auto/N reads CI_NODE_INDEX / CI_NODE_TOTAL: a plain run scans every server.
    assert '--shard "auto/$CI_NODE_TOTAL"' in script
    assert scan["artifacts"]["when"] == "always"
    assert "reports/" in scan["artifacts"]["paths"]
    # The shards' verdicts do not fail the pipeline; the merge (the fleet's verdict) does.
    assert scan["allow_failure"]["exit_codes"] == [1, 2]
    assert 1 not in merge["allow_failure"]["exit_codes"]
    assert 3 not in merge["allow_failure"]["exit_codes"]
    assert [n["job"] if isinstance(n, dict) else n for n in merge["needs"]] == ["scan"]
    whens = [merge["when"]] if "when" in merge else [r.get("when") for r in merge["rules"]]
    assert whens and all(w == "always" for w in whens)
    assert not ("when" in merge and "rules" in merge)
    merge_script = " ".join(merge["script"])
    assert "clamfleet merge reports/shard-*/report.json" in merge_script
    assert "--out reports/merged" in merge_script
    assert merge["artifacts"]["when"] == "always"
    assert merge["artifacts"]["reports"]["junit"] == "reports/merged/junit.xml"
    assert "junit" in merge_script
    # The image's ENTRYPOINT is clamfleet: the runner needs it reset to run its shell.
    base = data[".clamfleet"]
    assert base["image"]["entrypoint"] == [""]
    assert IMAGE in str(data["variables"].values())


def test_github_matrix_scan_and_merge() -> None:
    data = yaml.safe_load((CI / "github-actions.yml").read_text())
    triggers = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` as True
    assert "schedule" in triggers and "workflow_dispatch" in triggers
    scan, merge = data["jobs"]["scan"], data["jobs"]["merge"]
    shards = scan["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, len(shards) + 1)) and len(shards) > 1
    assert scan["strategy"]["fail-fast"] is False
    run_step = next(s for s in scan["steps"] if "docker run" in s.get("run", ""))
    assert f'--shard "$SHARD/{len(shards)}"' in run_step["run"]
    assert run_step["env"]["SHARD"] == "${{ matrix.shard }}"
    uploads = [s for s in scan["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert uploads and uploads[0]["uses"] == "actions/upload-artifact@v4"
    assert uploads[0]["if"] == "always()"
    assert merge["needs"] in ("scan", ["scan"])
    assert merge["if"] == "always()"
    uses = [s.get("uses", "") for s in merge["steps"]]
    assert "actions/download-artifact@v4" in uses
    merge_run = next(s for s in merge["steps"] if "docker run" in s.get("run", ""))["run"]
    assert "merge reports/" in merge_run and "--out reports/merged" in merge_run
    merged_upload = next(s for s in merge["steps"] if s.get("uses") == "actions/upload-artifact@v4")
    assert merged_upload["if"] == "always()"
    assert merged_upload["with"]["path"].startswith("reports/merged")
    sarif = next(s for s in merge["steps"] if "upload-sarif" in s.get("uses", ""))
    assert sarif["with"]["sarif_file"] == "reports/merged/report.sarif"
    assert merge["permissions"]["security-events"] == "write"
    assert data["env"]["CLAMFLEET_IMAGE"] == IMAGE


def test_gitlab_never_allows_a_code_that_is_no_verdict() -> None:
    data = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    for job in ("scan", "merge"):
        allowed = set(data[job]["allow_failure"]["exit_codes"])
        assert allowed <= {1, 2}, job  # 3, 70 and the rest fail the pipeline


def _github_step(job: str) -> str:
    data = yaml.safe_load((CI / "github-actions.yml").read_text())
    step = next(s for s in data["jobs"][job]["steps"] if "docker run" in s.get("run", ""))
    script: str = step["run"]
    return script


@pytest.mark.parametrize("job", ["scan", "merge"])
@pytest.mark.parametrize("code", [0, 1, 2, 3, 70, 137])
def test_github_steps_fail_on_every_code_that_is_no_verdict(
    tmp_path: Path, job: str, code: int
) -> None:
    """The step's script, run as GitHub runs it (bash -e), with `docker` exiting `code`."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    docker = bindir / "docker"
    docker.write_text(f"#!/bin/sh\nexit {code}\n")
    docker.chmod(0o755)
    env = {
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "SHARD": "1",
        "CLAMFLEET_IMAGE": IMAGE,
    }
    script = tmp_path / "step.sh"
    script.write_text(_github_step(job))
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert (tmp_path / "output").read_text() == f"exit-code={code}\n"
    verdict = code in (0, 1, 2)
    if job == "scan":  # a shard that reached a verdict succeeds; the merge gates the run
        assert (proc.returncode == 0) == verdict, proc.stdout
    else:
        assert proc.returncode == code, proc.stdout
    if not verdict:
        assert "::error::" in proc.stdout and "infected" not in proc.stdout
    if code == 70:
        assert "internal error" in proc.stdout


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_ci_tokens_come_from_ci_secrets_not_command_lines(name: str) -> None:
    text = (CI / name).read_text()
    _assert_no_inline_secrets(text, name)
    assert "WHM_TOKEN=" not in text and "--token" not in text
    if name == "github-actions.yml":
        data = yaml.safe_load(text)
        step = next(s for s in data["jobs"]["scan"]["steps"] if "docker run" in s.get("run", ""))
        assert step["env"]["WHM_TOKEN"] == "${{ secrets.WHM_TOKEN }}"
        assert "-e WHM_TOKEN \\" in step["run"]  # passed by name, the value stays in the env
        assert "secrets." not in step["run"]


# ---------------------------------------------------------------------------------------------
# systemd


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    # systemd joins lines ending in a backslash; configparser does not.
    text = (SYSTEMD / name).read_text().replace("\\\n", " ")
    parser.read_string(text)
    return parser


def _exec_start_script() -> str:
    """ExecStart's `sh -c` script as sh receives it ($$ -> $, %% -> %)."""
    value = _unit("clamfleet.service")["Service"]["ExecStart"]
    argv = shlex.split(value)
    assert argv[:2] == ["/bin/sh", "-c"] and len(argv) == 3
    assert "%" not in argv[2].replace("%%", "")  # no stray systemd specifiers
    return argv[2].replace("$$", "$").replace("%%", "%")


def test_systemd_units_parse() -> None:
    service = _unit("clamfleet.service")["Service"]
    assert service["Type"] == "oneshot"
    assert service["User"] == "clamfleet"
    assert {"1", "2"} <= set(service["SuccessExitStatus"].split())
    assert "0" not in service["SuccessExitStatus"].split()
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert service[key] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert "/var/lib/clamfleet" in service["ReadWritePaths"].split()
    assert service["StateDirectory"] == "clamfleet"
    assert service["LoadCredential"].startswith("whm_token:")
    script = _exec_start_script()
    for needle in (
        "/opt/clamfleet/bin/clamfleet run /etc/clamfleet/inventory.yaml",
        "--journal /var/lib/clamfleet/journal.sqlite",
        "--log-format json",
        "--no-progress",
        "--conflict-exit-code 75",  # flock's default 1 would read as "infected"
    ):
        assert needle in " ".join(script.split()), needle
    timer = _unit("clamfleet.timer")["Timer"]
    assert timer["OnCalendar"] == "*-*-* 02:00:00"
    assert timer["Persistent"] == "true"
    assert timer["RandomizedDelaySec"]
    assert timer["Unit"] == "clamfleet.service"
    assert _unit("clamfleet.timer")["Install"]["WantedBy"] == "timers.target"


def test_systemd_no_inline_secrets() -> None:
    for path in SYSTEMD.iterdir():
        _assert_no_inline_secrets(path.read_text(), path.name)
    service = _unit("clamfleet.service")["Service"]
    assert "Environment" not in service  # secrets via EnvironmentFile/LoadCredential only


def _run_exec_start(
    tmp_path: Path, fake_clamfleet: str, **env: str
) -> tuple[subprocess.CompletedProcess[bytes], Path]:
    """Run ExecStart's shell with clamfleet, flock and the state dir swapped for stand-ins."""
    state = tmp_path / "state"
    (state / "reports").mkdir(parents=True, exist_ok=True)
    fake = tmp_path / "clamfleet"
    fake.write_text(fake_clamfleet)
    fake.chmod(0o755)
    flock = shutil.which("flock")
    if flock is None:  # util-linux missing: a pass-through that drops flock's options
        flock = str(tmp_path / "flock")
        Path(flock).write_text('#!/bin/sh\nshift 4\nexec "$@"\n')
        Path(flock).chmod(0o755)
    script = (
        _exec_start_script()
        .replace("/opt/clamfleet/bin/clamfleet", str(fake))
        .replace("/usr/bin/flock", flock)
        .replace("/var/lib/clamfleet", str(state))
    )
    full_env = {**os.environ, "FAKE_LOG": str(tmp_path / "log"), **env}
    proc = subprocess.run(["/bin/sh", "-c", script], env=full_env, capture_output=True, timeout=20)
    return proc, state / "reports"


@pytest.mark.parametrize("code", [0, 1, 2, 3, 70])
def test_systemd_exec_start_script(tmp_path: Path, code: int) -> None:
    """The report directory is created, `latest` repointed, clamfleet's exit code kept."""
    proc, reports = _run_exec_start(tmp_path, FAKE_CLAMFLEET, FAKE_RUN_RC=str(code))
    assert proc.returncode == code, proc.stderr
    (run_dir,) = [p for p in reports.iterdir() if not p.is_symlink()]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d{6}Z", run_dir.name)
    assert (run_dir / "report.json").exists()
    assert os.readlink(reports / "latest") == str(run_dir)


def _old_report_folders(reports: Path, count: int) -> list[Path]:
    """Report folders of earlier nights, oldest first, each with its report."""
    folders = [reports / f"2020-01-{day:02d}T020000Z" for day in range(1, count + 1)]
    for folder in folders:
        folder.mkdir(parents=True)
        (folder / "report.json").write_text("{}")
    return folders


def test_systemd_run_keeps_the_newest_report_folders_and_nothing_else(tmp_path: Path) -> None:
    reports = tmp_path / "state" / "reports"
    old = _old_report_folders(reports, 6)
    (reports / "manual-rerun").mkdir()  # an operator's folder: not a timestamp, never removed
    (reports / "notes.txt").write_text("mine")
    proc, _ = _run_exec_start(tmp_path, FAKE_CLAMFLEET, FAKE_RUN_RC="1", CLAMFLEET_KEEP="3")
    assert proc.returncode == 1, proc.stderr
    names = {p.name for p in reports.iterdir() if not p.is_symlink()}
    (new,) = names - {p.name for p in old} - {"manual-rerun", "notes.txt"}
    assert names == {new, old[-1].name, old[-2].name, "manual-rerun", "notes.txt"}
    assert os.readlink(reports / "latest") == str(reports / new)


def test_systemd_run_without_a_report_neither_repoints_latest_nor_prunes(tmp_path: Path) -> None:
    reports = tmp_path / "state" / "reports"
    old = _old_report_folders(reports, 4)
    (reports / "latest").symlink_to(old[-1])
    no_report = '#!/bin/sh\necho "$*" >> "$FAKE_LOG"\nexit 3\n'  # bad inventory: nothing written
    proc, _ = _run_exec_start(tmp_path, no_report, CLAMFLEET_KEEP="1")
    assert proc.returncode == 3
    assert all(p.is_dir() for p in old)
    assert os.readlink(reports / "latest") == str(old[-1])


def test_systemd_keep_zero_or_garbage_removes_nothing(tmp_path: Path) -> None:
    reports = tmp_path / "state" / "reports"
    old = _old_report_folders(reports, 3)
    for keep in ("0", "two weeks"):
        proc, _ = _run_exec_start(tmp_path, FAKE_CLAMFLEET, CLAMFLEET_KEEP=keep)
        assert proc.returncode == 0, proc.stderr
        assert all(p.is_dir() for p in old), keep
    assert b"CLAMFLEET_KEEP=two weeks is not a number" in proc.stdout


def _exec_stop_post(exit_status: str, exit_code: str = "exited") -> str:
    value = _unit("clamfleet.service")["Service"]["ExecStopPost"]
    argv = shlex.split(value)
    assert argv[:2] == ["/bin/sh", "-c"] and len(argv) == 3
    script = argv[2].replace("$$", "$").replace("%%", "%")
    env = {**os.environ, "EXIT_STATUS": exit_status, "EXIT_CODE": exit_code}
    proc = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_systemd_only_exit_1_is_logged_as_infected_and_no_verdict_is_an_error() -> None:
    assert _exec_stop_post("0") == ""
    assert _exec_stop_post("1").startswith("<1>") and "INFECTED" in _exec_stop_post("1")
    assert _exec_stop_post("2").startswith("<4>")
    for status, code in (("3", "exited"), ("70", "exited"), ("137", "exited"), ("TERM", "killed")):
        line = _exec_stop_post(status, code)
        assert line.startswith("<3>"), (status, line)  # syslog "err": above -p err
        assert "INFECTED" not in line and "FAILED" in line, (status, line)
    assert "internal error" in _exec_stop_post("70")
    # Only the verdicts keep the unit from "failed": 3, 70 and the rest are service failures.
    success = set(_unit("clamfleet.service")["Service"]["SuccessExitStatus"].split())
    assert success == {"1", "2"}


def test_systemd_documentation_points_at_a_file_the_install_steps_put_there() -> None:
    """A `file://` page is copied there by an `install` step; `man:NAME(S)` is the page
    `pip install` puts in the venv's share/man/manS (pyproject data-files), linked by an `ln`
    step into a directory `man` searches."""
    docs = _unit("clamfleet.service")["Unit"]["Documentation"].split()
    readme = (DEPLOY / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```sh\n(.*?)```", readme, flags=re.S) if "systemctl" in b]
    steps = [shlex.split(line) for line in block.splitlines()]
    installs = [argv for argv in steps if argv[0] == "install"]
    links = [argv for argv in steps if argv[0] == "ln"]
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "data-files"
    ]
    assert any(doc.startswith("man:") for doc in docs), "the manual page is named"
    for doc in docs:
        if doc.startswith("man:"):
            match = re.fullmatch(r"man:([\w-]+)\((\d)\)", doc)
            assert match, doc
            name, section = match.groups()
            page = f"{name}.{section}"
            (shipped,) = [f for f in data_files[f"share/man/man{section}"] if f.endswith(page)]
            assert (ROOT / shipped).is_file(), f"{shipped}: not in the repository"
            venv_page = f"/opt/clamfleet/share/man/man{section}/{page}"
            (link,) = [argv for argv in links if argv[-2] == venv_page]
            assert link[-1] == f"/usr/local/share/man/man{section}/{page}", link
            continue
        assert doc.startswith("file://"), doc
        path = doc.removeprefix("file://")
        (step,) = [argv for argv in installs if argv[-1] == path]
        assert (ROOT / step[-2]).is_file(), f"{step[-2]}: not in the repository"


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed")
    for name in ("clamfleet.service", "clamfleet.timer"):
        shutil.copy(SYSTEMD / name, tmp_path / name)
    units = [str(tmp_path / "clamfleet.service"), str(tmp_path / "clamfleet.timer")]
    proc = subprocess.run(
        [exe, "verify", "--man=no", *units], capture_output=True, text=True, timeout=60
    )
    # verify exits 0 on settings it merely ignores ("Unknown key", "Failed to parse ..."), so
    # also fail on any message about our files. ExecStart= is /bin/sh, which exists.
    ours = [line for line in proc.stderr.splitlines() if "clamfleet." in line]
    assert proc.returncode == 0 and not ours, proc.stderr
    # The check is meaningful: a typo in a key is reported.
    bad = tmp_path / "clamfleet.service"
    bad.write_text(bad.read_text().replace("ProtectHome=", "ProtectHomes="))
    proc = subprocess.run(
        [exe, "verify", "--man=no", *units], capture_output=True, text=True, timeout=60
    )
    assert "ProtectHomes" in proc.stderr


# ---------------------------------------------------------------------------------------------
# Dockerfile and the documented `docker run`


def _dockerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _final_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile()
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    return instructions[last_from:]


def test_dockerfile_runtime_stage() -> None:
    import json

    instructions = _dockerfile()
    args = {v.split("=")[0]: v.split("=")[1] for k, v in instructions if k == "ARG" and "=" in v}
    froms = [v.split()[0] for k, v in instructions if k == "FROM"]
    assert all(f in ("python:3.11-slim", "${PYTHON_IMAGE}") for f in froms)
    assert args.get("PYTHON_IMAGE", "python:3.11-slim") == "python:3.11-slim"
    final = dict(_final_stage())  # last of each instruction in the runtime stage
    assert json.loads(final["ENTRYPOINT"]) == ["clamfleet"]
    assert json.loads(final["CMD"]) == ["--help"]
    assert final["WORKDIR"] == "/work"
    user = final["USER"].split(":")[0]
    assert user.isdigit() and int(user) >= 1000, "USER must be numeric non-root (runAsNonRoot)"
    env = " ".join(v for k, v in _final_stage() if k == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env
    assert "useradd" in final["RUN"] and f"--uid {user}" in final["RUN"]
    pod = _cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(user)


def test_dockerfile_installs_the_package_from_the_repo() -> None:
    instructions = _dockerfile()
    copies = [v.split() for k, v in instructions if k == "COPY" and "--from" not in v]
    sources = {src for c in copies for src in c[:-1]}
    assert {"pyproject.toml", "README.md", "orchestrator/"} <= sources
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
    runs = " ".join(v for k, v in instructions if k == "RUN")
    assert re.search(r"pip install \S*\"?\.\[speed\]\"?", runs)
    assert "-e " not in runs and "--editable" not in runs


def test_dockerfile_has_no_secrets() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    _assert_no_inline_secrets(text, "Dockerfile")
    for keyword, value in _dockerfile():
        if keyword in ("ENV", "ARG"):
            assert not re.search(r"(?i)token|passw|secret", value), value


def _readme_docker_runs() -> list[list[str]]:
    text = (DEPLOY / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    lines = [ln for b in blocks for ln in b.replace("\\\n", " ").splitlines()]
    return [shlex.split(ln) for ln in lines if ln.startswith("docker run ")]


def test_readme_docker_run_matches_the_image() -> None:
    runs = _readme_docker_runs()
    assert runs, "deploy/README.md documents no `docker run`"
    for argv in runs:
        image_at = argv.index(IMAGE)
        options, command = argv[2:image_at], argv[image_at + 1 :]
        # ENTRYPOINT is clamfleet: the first argument is a subcommand, not "clamfleet".
        assert command[0] in SUBCOMMANDS, command
        # The token is passed by name from the caller's environment, never as a value.
        envs = [options[i + 1] for i, o in enumerate(options) if o in ("-e", "--env")]
        assert "WHM_TOKEN" in envs
        assert all("=" not in e for e in envs)
        # The inventory given to clamfleet is the one mounted into the container.
        mounts = [options[i + 1].split(":") for i, o in enumerate(options) if o == "-v"]
        targets = {m[1] for m in mounts}
        assert command[1] in targets
        out = command[command.index("--out") + 1]
        assert any(out == t or out.startswith(t + "/") for t in targets)
        assert ("--user" in options) or all(m[-1] == "ro" for m in mounts if m[1] == out)
    readme = (DEPLOY / "README.md").read_text()
    assert "docker build -f deploy/Dockerfile" in readme
    # CI recipes use the same conventions: subcommand right after the image.
    gh = (CI / "github-actions.yml").read_text()
    after_image = re.findall(r'"\$CLAMFLEET_IMAGE" \\\n\s+(\w+)', gh)
    assert after_image == ["run", "merge"]
