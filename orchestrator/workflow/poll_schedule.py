"""When to read a running scan's status next: pure maths over what earlier reads showed.

cPanel's status counters are the only clock a scan has. From the rate at which they move this
module predicts when the scan can end and picks the next poll so that the read that sees
`scan_complete` comes at most a small share of the scan's duration after its true end, with as
few reads as that allows. Until there is a rate, a growing backoff between `poll_min` and
`poll_max`.

    next_poll_delay(scan, now, poll_min=..., poll_max=..., last_wait=...) -> seconds
    backoff(last_wait, poll_min, poll_max)                                -> seconds

`ScanProgress` is the part of the workflow's state this reads (the workflow keeps it up to date;
see `workflow._track_progress`). No I/O, no clock: `now` is passed in. What the schedule costs
and gains is measured by bench/polls.py (bench/RESULTS.md, "the poll schedule").
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.model import ScanStats

#: The lateness accepted in noticing a scan's end, as a share of the time it has run so far
#: (so at most this share of its duration).
LATE_SHARE = 0.03
#: A prediction is followed at most this many times the span its rate was measured over.
SPAN_REACH = 3.0
#: Before the counters have moved twice, how far toward the nearer prediction the earliest
#: end is put (one move since the totals appeared bounds the rate on one side only).
FIRST_RATE_SHARE = 0.6


@dataclass(frozen=True, slots=True)
class ScanProgress:
    """What the status reads of the scan being watched have shown (ours, or a foreign one)."""

    started_at: float | None = None  # when our start_scan was answered
    seen_running: bool = False  # a read showed it not complete: any later status is ours
    stats: ScanStats | None = None
    progress_at: float | None = None  # last time the counters moved (or the scan started)
    # The counters reached their current values after `progress_after` (when the status read
    # before the one that first showed them was sent) and by `progress_at`; None: not known
    progress_after: float | None = None
    poll_sent_at: float | None = None  # when the status request being answered was sent
    last_poll_sent_at: float | None = None  # when the last answered one (of our scan) was sent
    # (time, files scanned, bytes scanned) when the totals were first known: rates are
    # measured from here
    rate_anchor: tuple[float, int, int] | None = None
    total_bytes: int = 0  # the byte total, once cPanel reports it (0: predict from file counts)


def backoff(last_wait: float, poll_min: float, poll_max: float) -> float:
    """Blind polling: double the last wait, within the poll interval."""
    return min(poll_max, max(poll_min, last_wait * 2))


def next_poll_delay(
    scan: ScanProgress, now: float, *, poll_min: float, poll_max: float, last_wait: float
) -> float:
    """When to poll next: as late as the counters allow without noticing the end late.

    Before there is a progress rate (the counting pass, then until a file is scanned after the
    totals appear), a growing backoff; `poll_max` caps this blind backoff only. But a scan whose
    first counters already say it ends before that backoff poll (`_end_from_start`: a 2.5-s
    scan read at 2 s) is polled at that end, never sooner than `poll_min`: a short scan is
    noticed one floor after its end, not at a fixed second poll that doubled the wait. With a rate,
    `_end_bracket` gives the earliest and the latest time the scan can end. The slack is
    `LATE_SHARE` of the time the scan has run, at least `poll_min` and at least the last status
    request's round trip (polling faster than answers come back only adds load):

    * within the slack of the latest end: poll just after it;
    * otherwise: poll at the earliest end plus the slack, but never past the latest end, never
      more than `SPAN_REACH` times the span the rate was measured over (a rate from a short
      span is noise), and never sooner than the slack;
    * past the latest end (a file larger than any so far is being scanned): every slack.

    So the poll that sees `scan_complete` comes at most the slack after the end (while the
    rate holds): at most 3 % of the scan's duration late. A scan 10 % done after 60 s is still
    not polled every few seconds; the caller still bounds waits by its stall and scan deadlines.
    """
    bracket = _end_bracket(scan, now)
    if bracket is None:
        blind = backoff(last_wait, poll_min, poll_max)
        near = _end_from_start(scan)
        if near is not None and near < now + blind:
            # a short scan: follow its end, not a backoff poll seconds after it
            return max(poll_min, near - now + 0.05 * poll_min)
        return blind
    earliest, latest, span = bracket
    started = scan.started_at if scan.started_at is not None else now
    slack = max(poll_min, LATE_SHARE * (now - started))
    if scan.poll_sent_at is not None:
        slack = max(slack, now - scan.poll_sent_at)
    if latest <= now:
        return slack
    if latest - now <= slack:
        return max(poll_min, latest - now + 0.05 * poll_min)
    reach = max(poll_max, SPAN_REACH * span)
    return max(slack, min(earliest + slack - now, latest - now, reach))


def _end_from_start(scan: ScanProgress) -> float | None:
    """When the scan ends at the rate its counters show since start_scan was answered (they
    were 0 then): the counting pass is in that span, so the rate is low and the end late, which
    is what a single poll meant to see `scan_complete` wants. None: nothing scanned yet."""
    stats, started = scan.stats, scan.started_at
    if stats is None or started is None or stats.total_file_count <= 0:
        return None
    seen = scan.progress_at if scan.progress_at is not None else started
    ends = _ends_from(scan, stats, (started, 0, 0), seen)
    return max(ends) if ends else None


def _end_bracket(scan: ScanProgress, now: float) -> tuple[float, float, float] | None:
    """(earliest, latest, span): when the scan can end, from its rate since the totals appeared.

    Two predictions, from file counts and (once cPanel gives their total) from bytes. A scan's
    time is per-file overhead plus per-byte work, so its end lies between the two. And cPanel
    rewrites the counters once per file: while a file is scanned its work is not counted yet,
    so a rate measured up to "now" is too low (one large file in progress made a prediction
    2.5 times too far). The counters shown reached their values after the previous status
    request was sent (`progress_after`) and by the reply that first showed them
    (`progress_at`); a rate measured up to the one and up to the other bounds the real rate.
    The earliest end is the nearer prediction at the fast rate, the latest the farther one at
    the slow rate; `span` is what the slow rate was measured over. None: no rate yet.
    """
    stats, anchor = scan.stats, scan.rate_anchor
    if stats is None or anchor is None or stats.total_file_count <= 0:
        return None
    anchor_t = anchor[0]
    seen = anchor_t if scan.progress_at is None else max(scan.progress_at, anchor_t)
    ends = _ends_from(scan, stats, anchor, seen)
    if not ends:
        return None
    after = scan.progress_after
    if after is not None and after > anchor_t:
        earliest = min(_ends_from(scan, stats, anchor, after))
    else:  # no fast rate: the counters moved just once since the totals appeared
        earliest = now + FIRST_RATE_SHARE * (min(ends) - now)
    return earliest, max(ends), seen - anchor_t


def _ends_from(
    scan: ScanProgress, stats: ScanStats, anchor: tuple[float, int, int], at: float
) -> list[float]:
    """When the scan ends if the counters shown were reached at `at`: by files, by bytes."""
    anchor_t, anchor_count, anchor_bytes = anchor
    span = at - anchor_t
    counters = [(stats.scanned_file_count, anchor_count, stats.total_file_count)]
    if scan.total_bytes:
        counters.append((stats.scanned_file_size, anchor_bytes, scan.total_bytes))
    ends = []
    for scanned, at_anchor, total in counters:
        if (left := _remaining(span, scanned - at_anchor, total - scanned)) is not None:
            ends.append(at + left)
    return ends


def _remaining(span: float, done: int, left: int) -> float | None:
    """Seconds to scan `left` more units at the rate `done` took over `span` (None: no rate)."""
    if done <= 0 or span <= 0:
        return None
    return max(left, 0) * span / done
