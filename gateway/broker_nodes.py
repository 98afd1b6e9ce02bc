"""Which of the broker's nodes the uplink connects to next, and how long it waits first.

A single broker is a list of one node. A clustered broker (`BrokerParams.nodes`): a
connection that fails or drops moves on to the next node at once, in the order given; only
after every node has failed in a row does the uplink wait, and that back-off doubles (from
`backoff_min_s` up to `backoff_max_s`, with jitter) until a connection is up again.
"""

from __future__ import annotations

from gateway.uplink_settings import UplinkOptions

Node = tuple[str, int]


class NodeTurns:
    """The session thread's alone (not locked)."""

    def __init__(self, nodes: tuple[Node, ...], options: UplinkOptions) -> None:
        self.nodes = nodes
        self.options = options
        self._delay = options.backoff_min_s
        self._turn = 0  # the node to try next
        self._failed_in_a_row = 0  # nodes that failed since the last good connection

    def next(self) -> Node:
        """The node to try now."""
        node = self.nodes[self._turn % len(self.nodes)]
        self._turn += 1
        return node

    def failed(self) -> float | None:
        """This node could not be reached or refused us: None to try the next one at once;
        once every node has failed in a row, the back-off to wait (before jitter), and the
        next one is twice as long."""
        self._failed_in_a_row += 1
        if self._failed_in_a_row < len(self.nodes):
            return None
        self._failed_in_a_row = 0
        delay = self._delay
        self._delay = min(delay * 2, self.options.backoff_max_s)
        return delay

    def lost(self) -> float:
        """A connection that was up has ended: the back-off starts over; the wait (before
        jitter) before the next connect."""
        self._failed_in_a_row = 0
        self._delay = self.options.backoff_min_s
        return self._delay
