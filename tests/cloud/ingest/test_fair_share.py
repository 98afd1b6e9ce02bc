"""Fair shares of ingest's work (cloud/ingest/fair_share.py): a flooding gateway's messages wait in
its own backlog, at its own rate; everybody else's go on at once, in order."""

from __future__ import annotations

from cloud.ingest.fair_share import FairShare

T0 = 1000.0


def shares(**options: float) -> FairShare[tuple[str, int]]:
    return FairShare(lambda m: m[0], **options)  # type: ignore[arg-type]


def flood(f: FairShare[tuple[str, int]], gateway: str, at: float, n: int = 60) -> None:
    for i in range(n):
        f.refused(gateway, at + i * 0.001)


def test_gateways_that_are_not_flooding_are_not_touched() -> None:
    f = shares()
    arrived = [("a", i) for i in range(300)] + [("b", 0)]
    now, aside = f.schedule(arrived, room=500, now=T0)
    assert now == arrived and aside == []


def test_a_flooding_gateway_gets_its_share_and_the_others_all_of_theirs() -> None:
    f = shares(share=10, flood_rate=100)
    flood(f, "junk", T0)
    arrived = [("junk", i) for i in range(400)] + [("b", 0), ("junk", 400), ("b", 1)]
    now, aside = f.schedule(arrived, room=500, now=T0 + 0.1)
    assert [m for m in now if m[0] == "b"] == [("b", 0), ("b", 1)]
    assert [m[1] for m in now if m[0] == "junk"] == list(range(10))
    assert len(aside) == 391  # acknowledged at once, checked later
    # its backlog comes later, in its own order, at its rate
    later, _ = f.schedule([], room=500, now=T0 + 0.2)
    assert [m[1] for m in later] == list(range(10, 20))


def test_a_flooding_gateways_own_order_holds_and_its_overflow_is_counted() -> None:
    f = shares(share=5, max_backlog=20, flood_rate=1000)
    flood(f, "junk", T0)
    now, aside = f.schedule([("junk", i) for i in range(100)], room=500, now=T0 + 0.1)
    assert [m[1] for m in now] == [0, 1, 2, 3, 4]
    assert len(aside) == 95 and f.counts["dropped"] == 75  # 20 kept in its backlog
    seen = [m[1] for m in now]
    t = T0 + 0.2
    while f.backlog:
        batch, _ = f.schedule([], room=500, now=t)
        seen += [m[1] for m in batch]
        t += 0.1
    assert seen == sorted(seen)  # never out of its order


def test_a_gateway_stops_flooding_when_its_refusals_stop() -> None:
    f = shares()
    flood(f, "a", T0)
    assert f.flooding("a", T0 + 0.5)
    assert not f.flooding("a", T0 + 2.0)
    now, aside = f.schedule([("a", i) for i in range(100)], room=500, now=T0 + 2.0)
    assert len(now) == 100 and aside == []
