"""The fleet run: which targets, per-server lanes, the driver of each target's workflow, the
shared limiter, pacing's I/O edge, the journal, shards and the policy's decisions. The only
package with task groups (concurrency lives here and in the CLI's signal handling). May
import the client, the workflow, the configuration, the report and the shared vocabulary.

Inner layers, top down:

    runner.py    the task group that drives every target's workflow, per-server workers
    journal.py   SQLite journal of per-target progress, for --resume
    lanes.py     per-server scheduler: one target per account in flight, lanes kept busy
    driver.py    one target: state -> request -> reply, the policy's plan
    targets.py   which targets a run scans and why others are skipped
    pacer.py     pacing's I/O edge: take a load reading, report a deferral
    shard.py     --shard I/N: one inventory split over N runs, balanced by expected work
    limiter.py   the shared request rates (global and per server) and concurrency caps
    policy.py    what to do with each infected file: first match, plans, destructive budget
    exempt.py    which infected files are not findings: the canary, accepted ones
"""
