"""What `python -m bench.board_load` prints: page load, page weight, the latency of raised
alarms onto the full board, and the page's main thread while idle and while raising."""

from __future__ import annotations

import argparse
from typing import Any

from bench.report import say
from bench.stats import LATENCY_HEADERS, latency_row, ratio, table


def report(results: dict[str, Any], opts: argparse.Namespace) -> None:
    opened, raised = results["open"], results["raise"]
    board = ", ".join([opts.board_js or "cloud/web/static/board.js", opts.board_css or "board.css"])
    say(f"\n## Board with {results['filler']:,} open alarms ({board})")
    snap = opened["board_snapshot"]
    say(
        f"\nnavigation → all {results['filler']:,} rows in the DOM: "
        f"{opened['navigation_to_all_rows_ms']:.0f} ms"
        + (
            f"; the board's own snapshot parse {snap['parse_ms']:.1f} ms,"
            f" draw {snap['draw_ms']:.1f} ms"
            if snap
            else ""
        )
        + f"; 'shown' reports: {opened['shown_requests']} request(s)"
    )
    say(
        table(
            "Page weight (as served; the live stream not counted)",
            ["response", "status", "bytes", "gzip -6 bytes"],
            [
                *opened["weight_rows"],
                ["total", "", opened["weight_bytes"], opened["weight_gzip_bytes"]],
            ],
        )
    )
    say(
        "\n(the live stream's first message, the snapshot, is about "
        f"{results['snapshot_json_bytes']:,} B of JSON)"
    )
    say(
        table(
            f"{raised['alarms']} alarms raised at {raised['rate']:g}/s onto the full board (ms)",
            LATENCY_HEADERS,
            [
                latency_row("stored → drawn (row in the DOM)", raised["stored_to_drawn_ms"]),
                latency_row("  stored → pushed (cloud)", raised["stored_to_pushed_ms"]),
                latency_row("  pushed → drawn (stream + page)", raised["pushed_to_drawn_ms"]),
                latency_row("received → stored (cloud)", raised["received_to_stored_ms"]),
            ],
        )
    )
    idle = results["idle"]
    say(
        f"\nidle {idle['seconds']:g} s with {results['filler']:,} rows: {idle['long_tasks']} long"
        f" tasks on the main thread ({idle['long_task_ms']:.0f} ms in all, longest"
        f" {idle['long_task_max_ms']:.0f} ms)"
    )
    spent = ", ".join(f"{k} {v:.2f} s" for k, v in raised["main_thread_s"].items())
    say(f"main thread while raising (CDP): {spent}")
    share = ratio(raised["pushed_to_drawn_ms"]["p50"], raised["stored_to_drawn_ms"]["p50"])
    say(
        f"\npushed → drawn is {100 * (share or 0):.0f} % of stored → drawn at p50; "
        f"long tasks on the page's main thread meanwhile: {raised['long_tasks']} "
        f"({raised['long_task_ms']:.0f} ms in all, longest {raised['long_task_max_ms']:.0f} ms)"
    )
