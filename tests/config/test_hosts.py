"""Entries on one scheme+host+port share one budget: the smallest rate, cap and load settings."""

from __future__ import annotations

from dataclasses import replace

from orchestrator.config import AuthMethod, Credentials, LoadLimit, Server
from orchestrator.config.hosts import host_key, shared_limits
from orchestrator.model import Secret


def entry(
    name: str, url: str, method: AuthMethod = AuthMethod.CPANEL_TOKEN, **keys: object
) -> Server:
    auth = Credentials(method, name, Secret("x"))
    return replace(Server(name=name, base_url=url, auth=auth), **keys)  # type: ignore[arg-type]


def test_a_host_is_its_scheme_name_and_port_whatever_the_case() -> None:
    assert host_key("https://Web01.Example.com:2083") == ("https", "web01.example.com", 2083)
    assert host_key("https://web01.example.com") == ("https", "web01.example.com", 443)
    assert host_key("http://web01.example.com") == ("http", "web01.example.com", 80)
    assert host_key("https://web01:2083") != host_key("https://web01:2087")


def test_entries_of_one_host_share_the_smallest_rate_and_cap() -> None:
    hosts = shared_limits(
        [
            entry("a", "https://shop:2083", requests_per_second=5.0, max_concurrent_scans=3),
            entry("b", "https://SHOP:2083", requests_per_second=2.0, max_concurrent_scans=4),
            entry("c", "https://other:2083", requests_per_second=9.0, max_concurrent_scans=8),
        ]
    )
    shop = hosts[("https", "shop", 2083)]
    assert shop.servers == ("a", "b") and shop.shared
    assert (shop.requests_per_second, shop.max_concurrent_scans) == (2.0, 3)
    other = hosts[("https", "other", 2083)]
    assert not other.shared and (other.requests_per_second, other.max_concurrent_scans) == (9.0, 8)


def test_a_host_is_load_paced_by_its_whm_entries_smallest_max() -> None:
    whm = AuthMethod.WHM_TOKEN
    hosts = shared_limits(
        [
            entry("a", "https://web:2087", whm, load=LoadLimit(4.0, 30.0, patience=600.0)),
            entry("b", "https://web:2087", whm, load=LoadLimit(3.0, 10.0)),
            entry("c", "https://web:2087", whm),  # no max of its own: paced with the host
        ]
    )
    load = hosts[("https", "web", 2087)].load
    assert (load.max, load.check_interval, load.patience) == (3.0, 10.0, 600.0)
    alone = shared_limits([entry("d", "https://shop:2083")])[("https", "shop", 2083)]
    assert alone.load.max is None
