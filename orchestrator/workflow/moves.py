"""The small moves every phase makes: send a request, wait, end (done or failed), and the
verdict with each infected file's action and outcome."""

from __future__ import annotations

from dataclasses import replace

from orchestrator.model import (
    DisinfectionRecord,
    ErrorInfo,
    ErrorKind,
    InfectedFile,
    Outcome,
    Status,
    StatusData,
)
from orchestrator.workflow.events import Command, Finish, PlannedFile, Reply, Verdict, Wait
from orchestrator.workflow.poll_schedule import backoff
from orchestrator.workflow.state import Phase, State, doing


def request(state: State, command: Command) -> tuple[State, Command]:
    return replace(state, api_calls=state.api_calls + 1), command


def wait(state: State, seconds: float) -> tuple[State, Command]:
    return replace(state, last_wait=seconds), Wait(seconds)


def with_baseline(state: State, data: StatusData | None) -> State:
    """The status seen before start_scan: its time_started tells a stale status from ours."""
    baseline = data.time_started if data is not None else None
    return replace(state, start=replace(state.start, baseline=baseline))


def poll_backoff(state: State) -> float:
    return backoff(state.last_wait, state.cfg.poll_min, state.cfg.poll_max)


# ---------------------------------------------------------------------------------------------
# Endings


def done(state: State) -> tuple[State, Command]:
    state = replace(state, phase=Phase.DONE)
    verdict = verdict_of(state)
    return replace(state, verdict=verdict), Finish(verdict)


def fail(state: State, error: ErrorInfo) -> tuple[State, Command]:
    state = replace(state, phase=Phase.FAILED, error=error)
    verdict = verdict_of(state)
    return replace(state, verdict=verdict), Finish(verdict)


def unexpected(state: State, reply: Reply) -> tuple[State, Command]:
    message = f"unexpected {type(reply).__name__} {doing(state.phase)}"
    return fail(state, ErrorInfo(ErrorKind.INTERNAL, message))


def verdict_of(state: State) -> Verdict:
    if state.verdict is not None:
        return state.verdict
    if state.phase is Phase.FAILED and not state.infected:
        return Verdict(Status.FAILED, state.stats, (), state.error)
    files = infected_files(state)
    status = Status.INFECTED if files else Status.CLEAN
    return Verdict(status, state.stats, files, state.error)


def infected_files(state: State) -> tuple[InfectedFile, ...]:
    """Every infected file with its planned action and the outcome cPanel reported."""
    planned = {f.path: f for f in state.disinfection.planned}
    steps = _steps_by_path(state)
    out = []
    for path, virus in state.infected:
        plan = planned.get(path)
        if plan is None:
            out.append(InfectedFile(path, virus))
            continue
        out.append(_file_outcome(state, plan, steps.get(path)))
    return tuple(out)


def _file_outcome(
    state: State, plan: PlannedFile, record: DisinfectionRecord | None
) -> InfectedFile:
    limit_error = state.disinfection.limit_error
    if not plan.send or limit_error is not None:
        outcome = Outcome(plan.outcome) if plan.outcome else Outcome.NOT_REQUESTED
        message = plan.message if limit_error is None else "not sent: " + limit_error
        return InfectedFile(plan.path, plan.virus, plan.action, outcome, message)
    if record is None:
        message = state.error.message if state.error else "cPanel reported no step for this file"
        if state.disinfection.queued_at is not None:
            # Queued (or maybe queued), then not followed to the end: cPanel may still do it.
            # Never guessed as an error: the report says unknown, README says rescan.
            return InfectedFile(plan.path, plan.virus, plan.action, Outcome.UNKNOWN, message)
        return InfectedFile(plan.path, plan.virus, plan.action, Outcome.ERROR, message)
    try:
        outcome = Outcome(record.state)
    except ValueError:
        outcome = Outcome.ERROR
    return InfectedFile(plan.path, plan.virus, plan.action, outcome, record.message)


def _steps_by_path(state: State) -> dict[str, DisinfectionRecord]:
    """Step records keyed by our absolute path; cPanel may write home-relative paths."""
    paths = [p for p, _ in state.infected]
    out: dict[str, DisinfectionRecord] = {}
    for record in state.disinfection.records:
        if record.type != "step" or not record.file:
            continue
        path = _match_path(record.file, paths, state.target.account)
        if path is not None:
            out[path] = record
    return out


def _match_path(file: str, paths: list[str], account: str) -> str | None:
    if file.startswith("/"):
        return file if file in paths else None
    suffix = "/" + file.lstrip("./")
    candidates = [p for p in paths if p.endswith(suffix)]
    preferred = [p for p in candidates if p.endswith(f"/{account}{suffix}")]
    chosen = preferred or candidates
    return chosen[0] if len(chosen) == 1 else None
