"""bench.market on a small market: it prints its table and its last line, and a run replays identically."""

from __future__ import annotations

from bench.market import build_world, main, run


def test_bench_market_smoke(capsys) -> None:
    assert main(["--asins", "30", "--hours", "3", "--strategies", "seed,amazon_like"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("market: ours_share=n/a ours_profit=n/a seed_share=0.")
    assert " amazon_share=0." in lines[-1]
    assert any(line.startswith("seed ") for line in lines) and any(line.startswith("amazon_like ") for line in lines)


def test_ours_prices_with_the_recommended_rules_and_never_follows_a_bot_below_its_floor(capsys) -> None:
    assert main(["--asins", "40", "--hours", "4"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("market: ours_share=0.") and " ours_profit=" in lines[-1]
    assert "ours: undercut_bot ASINs priced below the rules' profit floor: 0" in lines
    (ours,) = [line.split() for line in lines if line.startswith("ours ")]
    assert int(ours[6]) > 0  # bot_asins: the check above looked at some


def test_a_strategy_replays_identically() -> None:
    items = build_world(3, 20)
    first, again = run(items, "seed", 3, 2, 5), run(items, "seed", 3, 2, 5)
    assert (first.share, first.profit_minor, first.units, first.changes) == (
        again.share,
        again.profit_minor,
        again.units,
        again.changes,
    )
    assert first.units > 0 and first.changes > 0
