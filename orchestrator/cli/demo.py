"""`clamfleet demo`: an embedded simulated fleet scanned end to end, in a dry run.

The fleet shows what a first week of real use meets: infected accounts, a suspended one, a
canary account on every server (the EICAR test file each night must find) and one known false
positive (a PHPMailer test fixture) accepted in an accepted-findings file. The demo exits 0
when it worked; the exit code a real run would have returned is printed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from orchestrator import __version__, log
from orchestrator.cli.acceptance import count_lines
from orchestrator.cli.execute import ScanJob, scan_and_report
from orchestrator.config import Limits, Policy, Rule, load_accepted
from orchestrator.config.inventory import load_inventory
from orchestrator.engine.runner import RunOptions
from orchestrator.model import EXIT_INTERNAL, Action, RunInfo
from orchestrator.report import DEFAULT_FORMATS, prepare_out_dir, summary_table
from orchestrator.report.attention import attention, attention_lines

DEMO_POLICY = Policy(
    default=Action.QUARANTINE,
    rules=(
        Rule(action=Action.IGNORE, name="test-signatures", virus="Eicar-*"),
        Rule(action=Action.CLEANSE_MAILBOX, name="mail", path="*/mail/*"),
    ),
    limits=Limits(max_destructive_per_account=10, max_destructive_per_run=100),
    source="demo (cPanel's own UI default)",
)
#: The known false positive planted in sim01's first active account, and its acceptance.
FIXTURE = "public_html/vendor/phpmailer/tests/fixtures/mail-injection.php"
FIXTURE_VIRUS = "Php.Trojan.PHPMailer-2"
ACCEPTED_YAML = """\
accepted:
  - when: {{server: sim01, path: "*/public_html/vendor/*/tests/*", virus: "Php.Trojan.PHPMailer-*"}}
    reason: "PHPMailer test fixture, not reachable from the web (demo)"
    expires: {expires}
"""
CANARY = {"account": "clamcanary", "path": "public_html/eicar.txt", "virus": "*EICAR*"}


def demo(args: argparse.Namespace) -> int:
    """Scan an embedded fleet end to end; exit 0 when the demo itself worked."""
    from orchestrator.simulator import SimFile, SimulatorThread, generate_fleet
    from orchestrator.simulator.generate import with_canary, with_file
    from orchestrator.simulator.referee import summary_lines

    log.configure(args.log_format, args.log_level)
    prepare_out_dir(args.out)
    spec = generate_fleet(
        servers=3, accounts=6, infected_ratio=0.35, seed=7, scan_seconds=1.0, suspended_ratio=0.1
    )
    owner = next(a.user for a in spec.servers[0].accounts if not a.suspended)
    spec = with_file(spec, "sim01", owner, SimFile(FIXTURE, 2400, FIXTURE_VIRUS))
    spec = with_canary(spec, user=CANARY["account"], path=CANARY["path"])
    settings = {"poll_interval": {"min": 0.1, "max": 1.0}, "requests_per_second": 200}
    print("starting a simulated fleet of 3 cPanel servers on 127.0.0.1 ...")
    with (
        tempfile.TemporaryDirectory(prefix="clamfleet-demo-") as tmp,
        SimulatorThread(spec) as fleet,
    ):
        inventory_path = Path(tmp) / "inventory.yaml"
        env: Mapping[str, str] = fleet.write_inventory(
            inventory_path, auth="whm", settings=settings, extra_server_keys={"canary": CANARY}
        )
        inventory = load_inventory(inventory_path, env={**os.environ, **env})
        log.register_secrets(s.auth.secret.reveal() for s in inventory.servers)
        accepted_path = Path(tmp) / "accepted.yaml"
        expires = date.today() + timedelta(days=180)
        accepted_path.write_text(ACCEPTED_YAML.format(expires=expires.isoformat()))
        accepted = load_accepted(accepted_path)
        run_id = uuid.uuid4().hex
        info = RunInfo(
            id=run_id,
            tool_version=__version__,
            started_at=datetime.now(UTC),
            finished_at=None,
            inventory="demo (embedded simulator)",
            dry_run=True,
            servers=tuple(s.name for s in inventory.servers),
            fleet_id=inventory.fleet_id,
            shard_servers=tuple(s.name for s in inventory.servers),
        )
        options = RunOptions(policy=DEMO_POLICY, dry_run=True, run_id=run_id, accepted=accepted)
        formats = {*DEFAULT_FORMATS, "json", "csv"}
        outcome = scan_and_report(ScanJob(inventory, options, info, args.out, formats))
    report, paths = outcome.report, outcome.paths
    # what a night's run prints: what needs attention first, then the table
    print("\n".join(attention_lines(attention(report), None)))
    print(summary_table(report))
    for line in count_lines(report):
        print(line)
    print("dry run: the policy's planned actions are in the report; nothing was disinfected")
    print(f"report: {paths[0].parent.resolve()}")
    print(f"a real run would have exited with code {report.summary.exit_code}")
    violations = fleet.violations()
    for line in summary_lines(violations)[:-1]:
        print(line)
    print(f"{len(violations)} protocol violations")
    # clamfleet's own client broke a cPanel rule: a bug, so the internal-error code
    return EXIT_INTERNAL if violations else 0
