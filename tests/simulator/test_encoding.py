"""The simulator escapes what ClamScanner reports exactly as cPanel's own encoder does."""

from __future__ import annotations

import pytest

from orchestrator.simulator import SimFile
from orchestrator.simulator.encoding import safe_html_encode
from tests.simulator.raw import alice, fleet_of, running

ODD = SimFile('public_html/a&b/<it\'s>"q".php', 500, "Php.<Shell>&'x'")
BIG = SimFile("public_html/z/line\nbreak's.txt", 50_000_000)


def test_the_five_characters_cpanel_encodes_and_nothing_else() -> None:
    assert safe_html_encode("a&b<c>d\"e'f/g h") == "a&amp;b&lt;c&gt;d&quot;e&#39;f/g h"


@pytest.mark.asyncio
async def test_infected_paths_and_virus_names_come_back_encoded_everywhere() -> None:
    async with running(fleet_of(alice(files=(ODD,)))) as api:
        status = (await api.scan_to_completion("alice"))["data"]
        listed = (await api.uapi("alice", "list_infected_files"))["data"]
    path = "/home/alice/public_html/a&amp;b/&lt;it&#39;s&gt;&quot;q&quot;.php"
    assert status["infected_files"] == [path]
    assert listed == [{"file": path, "virus_type": "Php.&lt;Shell&gt;&amp;&#39;x&#39;"}]


@pytest.mark.asyncio
async def test_the_file_being_scanned_is_encoded_without_line_breaks() -> None:
    async with running(fleet_of(alice(files=(SimFile("a", 10), BIG)))) as api:
        await api.uapi("alice", "start_scan", scan_type="home")
        api.clock.advance(5)  # the counting pass is over, the big file is being scanned
        status = (await api.uapi("alice", "get_scan_status"))["data"]
    assert status["current_file"] == "/home/alice/public_html/z/linebreak&#39;s.txt"
