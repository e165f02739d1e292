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
    """The rows among the scopes of ``parents`` ({path: parent path}), in recording order.

    A row inside a step of another (the heads of each time step, say) is not one: its
    scopes are clusters inside that step's column.
    """
    rows = {}
    for scope, parent in parents.items():
        match = _INDEXED.fullmatch(scope.rpartition("/")[2])
        if match:
            row = rows.setdefault((parent, match[1]), Row(parent, match[1], [], {}))
            row.scopes.append(scope)
            row.index[scope] = int(match[2])
    steps = {scope for row in rows.values() for scope in row.scopes}
    outermost = []
    for row in rows.values():
        enclosing = row.parent.split("/") if row.parent else []
        if not any("/".join(enclosing[:n]) in steps for n in range(1, len(enclosing) + 1)):
            row.scopes.sort(key=row.index.__getitem__)
            outermost.append(row)
    return outermost


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


def ranks(rows, nodes, edges, operations, names):
    """{node: rank} for the ``nodes`` of the rows ({node id: Column}), and the set of the
    nodes on the path of the state through their step.

    ``edges``: (tail, head) pairs; ``operations``: the nodes that compute (Functions and
    the nodes that stand for collapsed or folded steps); ``names``: {node: name} of the
    operations (their op) and of the markers (what they mark), the nodes that mark a use
    of something outside the rows.
    """
    inside, predecessors = defaultdict(list), defaultdict(list)
    backward = defaultdict(int)  # row -> state edges right to left, minus those left to right
    entries = set()  # the nodes that take a state from another step of their row
    for tail, head in edges:
        if tail in nodes and head in nodes and tail != head:
            a, b = nodes[tail], nodes[head]
            if a is b:
                inside[tail].append(head)
                predecessors[head].append(tail)
            elif a.row is b.row:
                backward[a.row] += 1 if a.position > b.position else -1
                entries.add(head)
    markers = {node for node in nodes if node in names and node not in operations}

    def signature(op):  # an op, and the shared things it reads: the same in every step
        return names[op], frozenset(names[p] for p in predecessors[op] if p in markers)

    takes_state = defaultdict(set)  # row -> signatures of the ops that take the state
    for node in entries:
        if node in operations:
            takes_state[nodes[node].row].add(signature(node))
    by_column = defaultdict(list)
    for node, column in nodes.items():
        by_column[column].append(node)
    local, on_path = {}, set()
    for column, column_nodes in by_column.items():
        signatures = takes_state[column.row]
        # where the state enters the step; in a first step, the ops that the others take it with
        sources = {n for n in column_nodes if n in entries or (
            n in operations and signature(n) in signatures)} if signatures else None
        local.update(_column_ranks(column_nodes, inside, predecessors, operations, markers, sources, on_path))
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
    return rank, on_path


def _column_ranks(column_nodes, inside, predecessors, operations, markers, sources, on_path):
    """The ranks of one column's nodes from 0, adding those on the state's path to ``on_path``.

    With ``sources`` (where the state enters), the ranks follow the path of the state: each
    node reached from a source one rank after those it follows; the rest, what feeds the
    path from the side (the step's input and its projection, markers), on the rank of its
    consumer. Without (a row with no state, heads side by side), they follow the
    operations: a node fed by an operation one rank after it. A marker of a use outside
    stands on the rank of the node it marks.
    """
    members = set(column_nodes)
    waiting = {node: len(predecessors[node]) for node in column_nodes}
    order, ready = [], [node for node in column_nodes if waiting[node] == 0]
    while ready:  # Kahn's topological order, without recursion
        node = ready.pop()
        order.append(node)
        for head in inside[node]:
            waiting[head] -= 1
            if waiting[head] == 0:
                ready.append(head)
    starts = operations if sources is None else sources
    reached, rank = set(), {}
    for node in order:
        fed = [p for p in predecessors[node] if p in reached]
        if node in starts or fed:
            reached.add(node)
            step = 0 if node in markers else 1
            rank[node] = max((rank[p] + step for p in fed), default=0)
    for node in reversed(order):
        if node not in reached:
            rank[node] = min((rank[h] for h in inside[node] if h in members), default=0)
    if sources is not None:
        on_path |= reached
    return rank
