"""`generate_fleet`: a realistic-ish fleet, identical for identical arguments.

Every random choice comes from a `random.Random` seeded with a string derived from the seed and
its purpose, so names, files, viruses, sizes and tokens never depend on hash randomisation.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from dataclasses import replace

from orchestrator.simulator.load import LoadSpec
from orchestrator.simulator.spec import AccountSpec, FleetSpec, ServerSpec, SimFile

NAMES = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
    "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter",
    "xena", "yusuf", "zoe", "amara", "bruno", "chiara", "dmitri", "elena", "farid", "greta",
    "hiro", "ines", "jonas", "kofi", "lena", "mateo", "nadia", "oscar", "priya", "quinn",
    "rosa",
)  # fmt: skip
WORDS = ("bakery", "garage", "studio", "dental", "florist", "travel", "books", "yoga", "law")
WEB_VIRUSES = ("Php.Webshell-1", "Php.Trojan.Shell-3", "Js.Malware.Obfus-12")
MAIL_VIRUSES = ("Html.Phishing.Bank-2", "Win.Test.EICAR_HDB-1", "Doc.Dropper.Agent-7")
HOME_VIRUSES = ("Eicar-Signature", "Win.Test.EICAR_HDB-1", "Unix.Trojan.Mirai-9")
# Paths with `&` and `'` so clients must HTML-unescape what cPanel reports.
ESCAPED_WEB = ("public_html/wp-content/uploads/Q&A/shell.php", "public_html/tom's-blog/x.php")
PLAIN_WEB = (
    "public_html/wp-content/uploads/2024/05/x.php",
    "public_html/wp-includes/js/jquery/jquery.min.js",
    "public_html/cgi-bin/mailer.php",
)
HOME_PATHS = ("tmp/invoice'2024.zip", "downloads/eicar.com", "backups/site & db.tar.gz")
CLEAN_FILES = (
    "public_html/index.php", "public_html/wp-config.php", "public_html/.htaccess",
    "public_html/wp-content/themes/twentytwenty/style.css",
    "public_html/wp-content/uploads/2024/05/logo.png", "public_html/robots.txt",
    "public_ftp/incoming/readme.txt", ".bashrc", "etc/passwd", "logs/access.log",
    "documents/notes.txt", "mail/inbox",
)  # fmt: skip


def _rng(seed: int, purpose: str) -> random.Random:
    return random.Random(f"clamfleet-sim/{seed}/{purpose}")  # noqa: S311 (simulation, not crypto)


def _token(rng: random.Random, n: int = 32) -> str:
    return "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(n))


def _usernames(rng: random.Random, count: int) -> list[str]:
    names = list(NAMES)
    rng.shuffle(names)
    return [names[i % len(names)] + (str(i // len(names) + 1) if i >= len(names) else "")
            for i in range(count)]  # fmt: skip


def _clean_files(rng: random.Random, scale: float) -> list[SimFile]:
    files = []
    for path in CLEAN_FILES:
        size = int(rng.randint(200, 400_000) * scale)
        messages = [None] * rng.randint(2, 6) if path.startswith("mail/") else None
        files.append(SimFile(path, size, None, messages))
    for i in range(rng.randint(4, 24)):
        files.append(
            SimFile(f"public_html/assets/file{i:03d}.js", int(rng.randint(500, 90_000) * scale))
        )
    return files


def _infected_files(rng: random.Random, count: int, escaped_first: bool) -> list[SimFile]:
    kinds = ["web", "mail", "home"]
    rng.shuffle(kinds)
    out = []
    for i, kind in enumerate(kinds[:count]):
        special = (escaped_first and i == 0) or rng.random() < 0.4
        if kind == "web":
            path = rng.choice(ESCAPED_WEB if special else PLAIN_WEB)
            out.append(SimFile(path, rng.randint(300, 20_000), rng.choice(WEB_VIRUSES)))
        elif kind == "mail":
            messages: list[str | None] = [None] * rng.randint(3, 7)
            for j in rng.sample(range(len(messages)), rng.randint(1, 2)):
                messages[j] = rng.choice(MAIL_VIRUSES)
            box = "mail/.Q&A folder/inbox" if special else "mail/example.com/info/inbox"
            out.append(SimFile(box, rng.randint(20_000, 900_000), None, messages))
        else:
            path = rng.choice(HOME_PATHS if special else ("tmp/a.out", "bin/miner"))
            out.append(SimFile(path, rng.randint(68, 50_000), rng.choice(HOME_VIRUSES)))
    return out


def _pick(rng: random.Random, total: int, ratio: float) -> set[int]:
    return set(rng.sample(range(total), round(max(0.0, min(1.0, ratio)) * total)))


def generate_fleet(
    servers: int = 3,
    accounts: int = 5,
    infected_ratio: float = 0.2,
    seed: int = 1,
    scan_seconds: float = 1.0,
    suspended_ratio: float = 0.0,
    no_feature_ratio: float = 0.0,
    load: LoadSpec | Sequence[LoadSpec] | None = None,
    time_scale: float = 1.0,
) -> FleetSpec:
    """`servers` servers (`sim01`...) of `accounts` accounts each.

    Scan durations are proportional to the account's size, with a mean of about
    `scan_seconds`; each account's own duration is in its `scan_seconds`. `load` models the
    servers' capacity and background load (one spec for all, or one per server, cycled);
    `time_scale` is the fleet's time compression (see simulator/load.py).
    """
    total = servers * accounts
    infected = _pick(_rng(seed, "infected"), total, infected_ratio)
    suspended = _pick(_rng(seed, "suspended"), total, suspended_ratio)
    no_feature = _pick(_rng(seed, "feature"), total, no_feature_ratio)
    first_infected = min(infected, default=-1)
    raw: list[tuple[int, AccountSpec]] = []
    for s in range(servers):
        rng = _rng(seed, f"server{s}")
        for a, user in enumerate(_usernames(rng, accounts)):
            i = s * accounts + a
            scale = rng.uniform(0.5, 1.5)
            files = _clean_files(rng, scale)
            if i in infected:
                files += _infected_files(rng, rng.randint(1, 3), i == first_infected)
            account = AccountSpec(
                user=user,
                domain=f"{user}{rng.choice(WORDS)}.example.com",
                password=_token(rng, 16),
                cpanel_token=_token(rng),
                suspended=i in suspended,
                has_feature=i not in no_feature,
                files=tuple(files),
                unix_startdate=1_600_000_000 + rng.randint(0, 100_000_000),
            )
            raw.append((s, account))
    fleet = _assemble(raw, servers, seed, scan_seconds)
    loads = [load] if isinstance(load, LoadSpec) else list(load or ())
    specs = tuple(
        replace(s, load=loads[i % len(loads)]) if loads else s for i, s in enumerate(fleet.servers)
    )
    return replace(fleet, servers=specs, time_scale=time_scale)


def _assemble(
    raw: list[tuple[int, AccountSpec]], servers: int, seed: int, scan_seconds: float
) -> FleetSpec:
    sizes = [a.disk_bytes for _, a in raw]
    mean = sum(sizes) / len(sizes) if sizes else 1.0
    per_server: list[list[AccountSpec]] = [[] for _ in range(servers)]
    for (s, account), size in zip(raw, sizes, strict=True):
        duration = round(scan_seconds * size / mean, 4)
        per_server[s].append(_with_duration(account, duration))
    token_rng = _rng(seed, "whm")
    specs = tuple(
        ServerSpec(name=f"sim{s + 1:02d}", accounts=tuple(accts), whm_token=_token(token_rng))
        for s, accts in enumerate(per_server)
    )
    return FleetSpec(servers=specs, scan_seconds=scan_seconds, seed=seed)


def _with_duration(account: AccountSpec, seconds: float) -> AccountSpec:
    return replace(account, scan_seconds=seconds)


# -- planted files: canaries and known false positives (the demo, tests) ----------------------

CANARY_USER = "clamcanary"
CANARY_PATH = "public_html/eicar.txt"
#: The EICAR test file's name in ClamAV's main database (`Win.Test.EICAR_HDB-1` in others).
EICAR = "Eicar-Signature"


def with_canary(
    spec: FleetSpec,
    servers: Sequence[str] | None = None,
    *,
    user: str = CANARY_USER,
    path: str = CANARY_PATH,
    virus: str = EICAR,
) -> FleetSpec:
    """The fleet with a dedicated canary account on every server (or those named) holding the
    EICAR test file at `path`: a small account, scanned in a fraction of the usual time."""
    files = (SimFile("public_html/index.html", 400), SimFile(path, 68, virus))
    account = AccountSpec(user=user, files=files, scan_seconds=round(spec.scan_seconds / 5, 4))
    chosen = set(servers) if servers is not None else {s.name for s in spec.servers}
    return replace(
        spec,
        servers=tuple(
            replace(s, accounts=(*s.accounts, account)) if s.name in chosen else s
            for s in spec.servers
        ),
    )


def with_file(spec: FleetSpec, server: str, user: str, file: SimFile) -> FleetSpec:
    """The fleet with one more file in one account (a known false positive, say)."""
    spec.server(server)  # KeyError for an unknown name
    servers = tuple(
        replace(
            s,
            accounts=tuple(
                replace(a, files=(*a.files, file)) if a.user == user else a for a in s.accounts
            ),
        )
        if s.name == server
        else s
        for s in spec.servers
    )
    return replace(spec, servers=servers)
