"""The `clamfleet` command: argparse wiring, what each subcommand does, and what a person sees
(live progress, validate's checks, notifications). The only place that maps errors to exit
codes. May import every other package; nothing imports it.

Inner layers, top down:

    parser.py          argparse wiring and exit codes: `main(argv) -> int`
    commands.py        what each subcommand does: load, run, report, pick the exit code
    helptext.py        --help: every option's default, the fault knobs, exit codes and files
    execute.py         one scan from first request to written report (run and demo)
    preflight.py       validate --check-connectivity
    probe.py           validate --check-api, over probe_canary.py (the canary scan) and
                       probe_record.py (--record: redacted transcripts)
    progress.py        the live progress area (rich), over progress_model.py (pure)
    lint.py            offline validate: the resolved settings per server, and the warnings
    notify.py          --notify-webhook: the URL from its variable, and when to post
"""

from orchestrator.cli.parser import main

__all__ = ["main"]
