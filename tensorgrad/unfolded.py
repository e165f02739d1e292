"""The unfolded layout of a drawn graph: indexed scopes as rows of columns in index order.

Sibling scopes named ``key=i`` with an integer i (``lstm.l0/t=0``, ``lstm.l0/t=1``, …;
``attn/head=0``, …) form a *row*; each is one *column* of it, the columns in order of i.
This module finds the rows, folds the columns outside a window into one column each
(:func:`window`), and gives every node of a row its rank (:func:`ranks`).

Time is dot's rank axis, the only order dot always keeps: column i of every row takes
the ranks after those of column i - 1, so the steps stand in index order, the columns of
stacked rows line up, and a state edge joins the last rank of one step to the first of
the next, short and straight. Inside a step the ranks follow the operations; what feeds
them from no operation of the step (its slice of the input, its x_t, the markers of
shared weights) sits on its consumer's rank beside it, below it in the picture, as in the
notes' unfolded network (x_t below s_t). A row whose state runs from the last step to the
first (a reverse direction) has each step's ranks mirrored: it runs right to left.
"""

import re
from collections import defaultdict
from dataclasses import dataclass, field

_INDEXED = re.compile(r"(.+)=(-?\d+)")


@dataclass(eq=False)
class Column:
    """One step of a row as drawn: a step's scope, or several folded into one node."""

    row: "Row"
    position: int  # left to right
    scopes: list  # the step scopes it stands for, in index order
    folded: bool = False

    @property
    def label(self):
        first, last = (self.row.index[s] for s in (self.scopes[0], self.scopes[-1]))
        return f"{self.row.key}={first} … {last}"


@dataclass(eq=False)
class Row:
    """Sibling scopes ``parent/key=i``, ordered by i."""

    parent: str  # None: the top level
    key: str
    scopes: list
    index: dict  # step scope -> i
    columns: list = field(default_factory=list)


def find_rows(parents):
    """The rows among the scopes of ``parents`` ({path: parent path}), in recording order."""
    rows = {}
    for scope, parent in parents.items():
        match = _INDEXED.fullmatch(scope.rpartition("/")[2])
        if match:
            row = rows.setdefault((parent, match[1]), Row(parent, match[1], [], {}))
            row.scopes.append(scope)
            row.index[scope] = int(match[2])
    for row in rows.values():
        row.scopes.sort(key=row.index.__getitem__)
    return list(rows.values())


def window(rows, steps):
    """Set each row's columns: every step, or with ``steps`` (a slice of the steps in index
    order) those steps, with the steps before and after folded into one column each."""
    for row in rows:
        n = len(row.scopes)
        start, stop = (0, n) if steps is None else steps.indices(n)[:2]
        stop = max(start, stop)
        parts = [(row.scopes[:start], True)] + [([s], False) for s in row.scopes[start:stop]]
        parts.append((row.scopes[stop:], True))
        row.columns = [Column(row, position, scopes, folded)
                       for position, (scopes, folded) in enumerate(p for p in parts if p[0])]


def ranks(rows, nodes, edges, operations, markers):
    """{node: rank} for the ``nodes`` of the rows ({node id: Column}), and the set of those
    that an operation of their step computes (the others feed them from the side).

    ``edges``: (tail, head) pairs; ``operations``: the nodes that compute (Functions and
    the nodes that stand for collapsed or folded steps); ``markers``: the nodes that mark
    a use of something outside the rows.
    """
    inside = defaultdict(list)
    backward = defaultdict(int)  # row -> state edges right to left, minus those left to right
    for tail, head in edges:
        if tail in nodes and head in nodes and tail != head:
            a, b = nodes[tail], nodes[head]
            if a is b:
                inside[tail].append(head)
            elif a.row is b.row:
                backward[a.row] += 1 if a.position > b.position else -1
    by_column = defaultdict(list)
    for node, column in nodes.items():
        by_column[column].append(node)
    local, computed = {}, set()
    for column_nodes in by_column.values():
        local.update(_column_ranks(column_nodes, inside, operations, markers, computed))
    width = defaultdict(int)  # column position -> ranks it takes, over all rows
    for node, column in nodes.items():
        width[column.position] = max(width[column.position], local[node] + 1)
    offset, total = {}, 0
    for position in sorted(width):
        offset[position], total = total, total + width[position]
    reversed_rows = {row for row in rows if backward[row] > 0}
    rank = {}
    for node, column in nodes.items():
        step = local[node] if column.row not in reversed_rows else width[column.position] - 1 - local[node]
        rank[node] = offset[column.position] + step
    return rank, computed


def _column_ranks(column_nodes, inside, operations, markers, computed):
    """The ranks of one column's nodes from 0: an operation one rank after the operations
    it follows; a node fed by no operation of the column on the rank of its consumer; a
    marker of a use outside on the rank of the node it marks. Adds the computed nodes to
    ``computed``."""
    members = set(column_nodes)
    predecessors = defaultdict(list)
    waiting = dict.fromkeys(column_nodes, 0)
    for node in column_nodes:
        for head in inside[node]:
            if head in members:
                predecessors[head].append(node)
                waiting[head] += 1
    order, ready = [], [node for node in column_nodes if waiting[node] == 0]
    while ready:  # Kahn's topological order, without recursion
        node = ready.pop()
        order.append(node)
        for head in inside[node]:
            if head in members:
                waiting[head] -= 1
                if waiting[head] == 0:
                    ready.append(head)
    rank = {}
    for node in order:
        fed = [p for p in predecessors[node] if p in computed]
        if node in operations or fed:
            computed.add(node)
            step = 0 if node in markers else 1
            rank[node] = max((rank[p] + step for p in fed), default=0)
    for node in reversed(order):
        if node not in computed:
            rank[node] = min((rank[h] for h in inside[node] if h in members), default=0)
    return rank
