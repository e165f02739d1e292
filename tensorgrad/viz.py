"""Draw recorded computation graphs with Graphviz.

``make_dot(loss)`` walks the tape back from ``loss`` and returns a ``graphviz.Digraph``:
one node per Variable and per Function, edges in the direction data flows (input Variable
→ Function → output Variable), one cluster (box) per recording scope such as a time step.
``render(graph, "graph.svg")`` writes it through Graphviz's ``dot`` program.

    import tensorgrad.viz as viz
    loss.backward(retain_grad=True)
    viz.render(viz.make_dot(loss, params=dict(model.named_parameters())), "graph.svg")
"""

import functools
import html
import itertools
import math
import operator
from collections import defaultdict
from pathlib import Path

import graphviz
import numpy as np

from tensorgrad import unfolded
from tensorgrad.autograd import reachable_functions
from tensorgrad.jit_plan import Plan
from tensorgrad.variable import Variable

DOT_NOT_FOUND = ("Graphviz's 'dot' program was not found; install it with 'apt-get install graphviz' "
                 "or 'brew install graphviz' (or run scripts/install-graphviz.sh); the DOT source "
                 "is still available as .source")


class DotNotFoundError(RuntimeError):
    """Rendering needs Graphviz's ``dot`` program, and it is not installed."""


# Each kind of Variable has its own shape, so that the kinds stay apart when the fill
# colour shows the gradient norm instead.
_VARIABLE_STYLE = {  # kind: (shape, fill colour when no gradient is shown)
    "input": ("invhouse", "#cfe2f3"),
    "parameter": ("hexagon", "#d9ead3"),
    "intermediate": ("ellipse", "#ffffff"),
    "output": ("doubleoctagon", "#fce5cd"),
}
_FUNCTION_STYLE = 'shape=box style="rounded,filled" fillcolor="#eeeeee"'
_SCOPE_STYLE = 'shape=box3d fillcolor="#fff2cc"'
_FOLD_STYLE = 'shape=box3d fillcolor="#fff2cc"'
_MARKER_STYLE = 'style="filled,dashed" fontsize=8 height=0.3 width=0.3 margin="0.04,0.02"'
_CLUSTER_STYLE = 'style=rounded color="#999999" fontcolor="#555555"'
_ANCHOR_STYLE = "style=invis shape=point width=0 height=0"
_ROW_STYLE = 'label="" class=row style=dashed color="#bbbbbb"'
_SHARED_EDGE_STYLE = 'style=dashed color="#777777" labelfontsize=9 labelfontcolor="#555555" labeldistance=1.5'
_ANCHORED_COLUMNS = 2  # rows are held in order by their first steps (see _order_rows)
_STRIP_CELLS = 100  # at most this many cells in the strip of a run of folded steps
_RANKDIR = {"right": "LR", "down": "TB"}  # time is the rank axis
# nslimit bounds the network-simplex passes that place the nodes: the long edges of a big
# graph can make dot spend minutes for a few pixels (small graphs come out the same).
_LAYOUT = {"nslimit": "10"}
# Matplotlib's "inferno" colour map at a few points: black-purple (tiny) to yellow (large).
_HEAT_AT = [0.0, 0.25, 0.5, 0.75, 1.0]
_HEAT = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], float)
_NONFINITE_FILL = "#00ffff"  # NaN or Inf: a colour outside the heat scale
_RENDER_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}
_SOURCE_SUFFIXES = (".dot", ".gv")


def make_dot(*outputs, params=None, show_grad=None, collapse=False, steps=None, time="right",
             shared="fold", backward=False):
    """The recorded graph behind ``outputs`` as a ``graphviz.Digraph``.

    Every Function that the outputs depend on and every Variable that those Functions
    read or produce is drawn once. Variables show their name (from ``params``, a mapping
    name → Variable or a sequence of (name, Variable) pairs such as
    ``model.named_parameters()``, else ``Variable.name``), shape and dtype; Functions show
    their op. Shapes tell the kinds apart: inputs (leaves not in ``params``) are pentagons
    pointing down (dashed when they need no gradient), parameters hexagons, intermediates
    ellipses, outputs double octagons, Functions rounded boxes, collapsed scopes 3-D boxes.

    ``show_grad`` (default: whenever a drawn Variable has a ``.grad``) adds ‖grad‖₂ to the
    labels and fills each node by log₁₀‖grad‖ on the "inferno" scale over the drawn
    graph, from black (smallest) to yellow (largest): a vanishing gradient along an
    unrolled sequence shows as a darkening trail. Intermediate gradients exist after
    ``backward(retain_grad=True)``.

    Each ``tg.scope`` path is a cluster, nested as the scopes were. A Function's outputs
    sit in its cluster, or in the step cluster inside it that uses them (each step's slice
    of a sequence); a leaf sits in the innermost cluster holding all its consumers.
    ``collapse=True`` draws each innermost scope as one node with its op count: edges come
    in from the Variables it reads and go out to the Variables it hands on; Variables made
    and used only inside are hidden.

    Sibling scopes named ``key=i`` (``t=0``, ``t=1``, … of a recurrent layer; ``head=0``,
    … ) are drawn as the notes' unfolded network: a row of steps in index order, always,
    left to right (``time="down"``: top to bottom). Along a step, the state's path
    s_{t-1} → … → s_t runs on a straight line into the next step; what feeds it from the
    side (the step's input x_t, its slice of the input projection) stands beneath. The
    rows of stacked layers and of the two directions of a layer stand one above the other,
    their steps lined up in time, in the order they were recorded from the bottom up (as the
    notes draw x below s below y): layer 0 at the bottom, its reverse direction above it,
    then layer 1 (``time="down"``: layer 0 on the left); a reverse direction runs right to
    left. ``steps`` (a slice of each row's steps in index order) draws those
    steps in full and folds the steps before and after into one node each, labelled with
    their count, op count and the gradient norm of the state the first and the last of
    them passes on, over a strip of one cell a step coloured by that norm.
    ``shared="fold"`` draws each use by the steps of something outside them (a weight
    shared by every step, the Function that slices a sequence, the one that stacks the
    outputs) as a small marker inside each step, and one dashed edge, labelled with the
    number of steps, between it and the row; ``shared="edges"`` draws every use as an edge.

    ``make_dot(plan)`` draws the plan of a ``tg.jit`` function instead (``fn.plan``), with its
    backward steps if ``backward``: see :func:`make_plan_dot`; the options of the tape's
    drawing do not apply to a plan.
    """
    if len(outputs) == 1 and isinstance(outputs[0], Plan):
        tape_options = {"show_grad": show_grad is not None, "collapse": collapse, "steps": steps is not None,
                        "time": time != "right", "shared": shared != "fold"}
        given = [name for name, set_ in tape_options.items() if set_]
        if given:
            raise TypeError(f"make_dot: {', '.join(given)} apply to the tape's drawing, not to a plan's "
                            "(make_dot(plan, backward=..., params=...))")
        return make_plan_dot(outputs[0], backward=backward, params=params)
    if backward:
        raise TypeError("make_dot: backward=True draws a plan's backward steps; the tape's drawing of "
                        "outputs shows the recorded graph the backward pass walks")
    if not outputs:
        raise TypeError("make_dot: pass at least one output Variable")
    for y in outputs:
        if y is None:
            raise TypeError("make_dot: got None, not a Variable or a plan; a tg.jit function's .plan is "
                            "None until its first call traces it")
        if not isinstance(y, Variable):
            raise TypeError(f"make_dot: outputs must be Variables, got {type(y).__name__}")
    if time not in _RANKDIR:
        raise ValueError(f"make_dot: time must be 'right' or 'down', got {time!r}")
    if shared not in ("fold", "edges"):
        raise ValueError(f"make_dot: shared must be 'fold' or 'edges', got {shared!r}")
    if steps is not None and (not isinstance(steps, slice) or steps.step not in (None, 1)):
        raise TypeError(f"make_dot: steps must be a slice of consecutive steps such as slice(10, 15), "
                        f"got {steps!r}")
    names = _param_names(params)
    functions = sorted(reachable_functions(outputs), key=operator.attrgetter("seq"))
    variables = _variables(functions, outputs)
    output_ids = {id(y) for y in outputs}

    parents = _scope_parents(functions)
    rows = unfolded.find_rows(parents)
    unfolded.window(rows, steps)
    scopes = _Scopes(parents, rows, collapse)
    where, hidden, variable_steps = _placement(functions, variables, output_ids, scopes)

    if show_grad is None:
        show_grad = any(variables[key].grad is not None for key in where)
    fold_norms = _fold_norms(functions, scopes) if show_grad else {}
    heat = _heat_map([variables[key] for key in where], fold_norms) if show_grad else {}

    # The DOT lines are written straight into the Digraph's body: the ids are plain names
    # and _quote escapes the labels, while Digraph.node() (~25 µs a call) would make a
    # 10⁵-node graph take seconds.
    node_id = {key: f"v{i}" for i, key in enumerate(variables)}
    members = defaultdict(list)  # drawn scope (None: top level) -> the lines of its nodes
    home = {}  # node id -> the Column it stands in
    labels = {}  # node id -> (first line of its label, shape, fill, font) for markers
    for key, (scope, column) in where.items():
        v = variables[key]
        kind = ("output" if key in output_ids else "parameter" if key in names
                else "input" if v.creator is None else "intermediate")
        line, labels[node_id[key]] = _variable_line(node_id[key], v, kind, names.get(key, v.name), heat)
        members[scope].append(line)
        if column is not None:
            home[node_id[key]] = column
    operations = set()  # the nodes that compute: Functions, collapsed scopes, folded steps
    edges = _draw_functions(functions, scopes, node_id, (hidden, variable_steps), members, home, labels,
                            operations)
    for unit in scopes.units.values():
        members[unit.container].append(_unit_line(unit, heat, time))
        labels[unit.node] = (_last(unit.scope), "box3d", "#fff2cc", "black")
        operations.add(unit.node)
        if unit.column is not None:
            home[unit.node] = unit.column
    markers = _fold_shared_uses(edges, home, labels, scopes, members) if shared == "fold" else set()
    names = {node: "" if node in scopes.units else labels[node][0]  # a unit: the same in every step
             for node in home if node in operations or node in markers}
    rank, on_path = unfolded.ranks(rows, home, [edge[:2] for edge in edges], operations, names)
    _order_rows(rows, scopes.children, members, [edge[:2] for edge in edges], (home, rank), time)

    dot = graphviz.Digraph("tensorgrad",
                           graph_attr={"fontname": "Helvetica", "fontsize": "11", **_LAYOUT},
                           node_attr={"fontname": "Helvetica", "fontsize": "10", "style": "filled"},
                           edge_attr={"arrowsize": "0.7"})
    if rows:
        dot.graph_attr.update(rankdir=_RANKDIR[time], newrank="true", compound="true")
    dot.body += members[None]
    numbers = itertools.count()
    cluster_id = {}
    for scope in scopes.children[None]:
        _add_cluster(dot.body, scope, "\t", scopes.children, members, numbers, cluster_id)
    dot.body += [_edge_line(tail, head, attributes, cluster_id, home, rank)
                 for tail, head, attributes, _ in edges]
    dot.body += _rank_lines(rows, home, rank, on_path)
    return dot


def render(digraph, path):
    """Write ``digraph`` to ``path`` in the format its suffix names; return the path.

    ``.svg``, ``.png`` and ``.pdf`` are drawn by Graphviz's ``dot`` program (run directly,
    never through a shell); ``.dot`` (or ``.gv``) writes the DOT source and needs no
    ``dot``. Without ``dot``, raises :class:`DotNotFoundError` (a RuntimeError) whose
    message says how to install it, so a command line can print it as it is.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in _SOURCE_SUFFIXES:
        path.write_text(digraph.source, encoding="utf-8")
        return path
    if suffix not in _RENDER_FORMATS:
        raise ValueError(f"render: cannot tell the format of {str(path)!r}; use a .svg, .png, .pdf "
                         "or .dot suffix")
    try:
        image = digraph.pipe(format=_RENDER_FORMATS[suffix])
    except graphviz.ExecutableNotFound:
        raise DotNotFoundError(DOT_NOT_FOUND) from None
    path.write_bytes(image)
    return path


# --------------------------------------------------------------------- the graph walk
def _param_names(params):
    """{id(Variable): name} from a mapping or a sequence of (name, Variable) pairs."""
    if params is None:
        return {}
    pairs = params.items() if hasattr(params, "items") else params
    names = {}
    for name, v in pairs:
        if not isinstance(v, Variable):
            raise TypeError(f"make_dot: params[{name!r}] must be a Variable, got {type(v).__name__}")
        names[id(v)] = str(name)
    return names


def _alive(function):
    """The outputs of ``function`` that still exist (unused ones may have been freed)."""
    outputs = (ref() for ref in function.outputs)
    return [y for y in outputs if y is not None]


def _variables(functions, outputs):
    """{id: Variable} for every Variable the Functions read or produce, in drawing order."""
    variables = {}
    for function in functions:
        for x in function.inputs:
            variables.setdefault(id(x), x)
        for y in _alive(function):
            variables.setdefault(id(y), y)
    for y in outputs:  # a leaf passed as an output has no Function
        variables.setdefault(id(y), y)
    return variables


def _scope_parents(functions):
    """{scope path: enclosing path or None} for every scope and every enclosing scope."""
    parents = {}
    for function in functions:
        scope = function.scope
        while scope is not None and scope not in parents:
            parent = scope.rpartition("/")[0] or None
            parents[scope] = parent
            scope = parent
    return parents


def _common_scope(a, b):
    """The innermost scope path enclosing both (None: the top level)."""
    if a == b or a is None:
        return a
    if b is None:
        return None
    common = []
    for part_a, part_b in zip(a.split("/"), b.split("/"), strict=False):
        if part_a != part_b:
            break
        common.append(part_a)
    return "/".join(common) or None


class _Unit:
    """A node that stands for a scope: a collapsed scope, or the folded steps of a column."""

    def __init__(self, node, scope, container, column):
        self.node, self.scope, self.container, self.column = node, scope, container, column
        self.folded = column is not None and column.folded and scope in column.scopes
        self.ops = 0


class _Scopes:
    """How each scope is drawn: as a cluster (in which container), or inside a unit node.

    ``column[scope]``: the Column of a row that the scope is in (None outside the rows);
    ``step[scope]``: the step scope of a row it is in (the innermost);
    ``unit[scope]``: the node id of the unit it is drawn in, if it is not a cluster;
    ``children[container]``: the clusters (scope paths, or Rows: the box around a row's
    steps) drawn in a cluster (None: the top level).
    """

    def __init__(self, parents, rows, collapse):
        innermost = set(parents).difference(parents.values())
        step_column = {scope: column for row in rows for column in row.columns for scope in column.scopes}
        row_of = {scope: row for row in rows for scope in row.scopes}
        self.column, self.step, self.unit, self.units = {}, {}, {}, {}
        self.children = defaultdict(list)
        folds = {}  # Column of folded steps -> its unit node
        for scope in sorted(parents, key=lambda path: path.count("/")):  # parents first
            parent = parents[scope]
            self.step[scope] = scope if scope in row_of else self.step.get(parent)
            if parent in self.unit:  # inside a collapsed or folded scope
                self.unit[scope] = self.unit[parent]
                self.column[scope] = self.column[parent]
                continue
            self.column[scope] = step_column.get(scope, self.column.get(parent))
            row = row_of.get(scope)
            container = parent
            if row is not None:
                container = row
                if row not in self.children[parent]:
                    self.children[parent].append(row)
            column = self.column[scope]
            if row is not None and column.folded:
                if column not in folds:  # met first (a reverse direction records its last step first)
                    folds[column] = node = f"u{len(self.units)}"
                    self.units[node] = _Unit(node, column.scopes[0], row, column)
                self.unit[scope] = folds[column]
            elif collapse and scope in innermost:
                node = f"s{len(self.units)}"
                self.units[node] = _Unit(node, scope, container, column)
                self.unit[scope] = node
            else:
                self.children[container].append(scope)

    def is_state(self, scope, other):
        """Whether ``other`` is another step of the row ``scope`` is a step of."""
        a, b = self.step.get(scope), self.step.get(other)
        return a is not None and b is not None and a != b and self.column[a].row is self.column[b].row


def _moves_into(inner, outer, scopes):
    """Whether a Variable made in ``outer`` and used only in ``inner`` is drawn in ``inner``:
    when ``inner`` is a step inside ``outer`` (each step's slice of a whole sequence)."""
    if inner is None or inner == outer or scopes.column.get(inner) is None:
        return False
    inside = outer is None or inner.startswith(outer + "/")
    return inside and scopes.column[inner] is not scopes.column.get(outer)


def _placement(functions, variables, output_ids, scopes):
    """Where each Variable is drawn: ({id: (scope, Column)}, {id: unit node}) for the drawn ones
    and the hidden ones (drawn as part of the unit node that stands for their scope), and
    {id: the step scope it belongs to, or None}.

    A Function's outputs sit in its scope, or in the step inside it where they are all
    used; a leaf in the innermost scope holding all its consumers. Inside a collapsed
    scope a Variable is drawn only if it comes from outside or leaves the scope (read by a
    Function outside it, or passed to ``make_dot``), in the enclosing scope; inside folded
    steps only if it is the state handed to a drawn step, or an output.
    """
    consumers = defaultdict(list)
    for function in functions:
        for x in function.inputs:
            consumers[id(x)].append(function.scope)
    where, hidden, steps = {}, {}, {}
    for key, v in variables.items():
        used_in = consumers.get(key, [])
        common = functools.reduce(_common_scope, used_in) if used_in else None
        if v.creator is None:
            scope = common
        else:
            scope = v.creator.scope
            if used_in and _moves_into(common, scope, scopes):
                scope = common
        steps[key] = scopes.step.get(scope)
        unit = scopes.unit.get(scope)
        if unit is None:
            where[key] = (scope, scopes.column.get(scope))
            continue
        info = scopes.units[unit]
        made_inside = v.creator is not None and scopes.unit.get(v.creator.scope) == unit
        if info.folded:
            shown = key in output_ids or (made_inside and any(
                scopes.unit.get(s) != unit and scopes.is_state(scope, s) for s in used_in))
        else:
            shown = (not made_inside or key in output_ids
                     or any(scopes.unit.get(s) != unit for s in used_in))
        if shown:
            where[key] = (info.container, info.column)
        else:
            hidden[key] = unit
    return where, hidden, steps


def _draw_functions(functions, scopes, node_id, variables, members, home, labels, operations):
    """Add the node of each Function, or of each unit, to ``members``; return the edges.

    A drawn Function has an edge from each input (one per operand) and to each live
    output. A unit has one edge from each node entering it and one to each node leaving it.
    ``variables``: ({id: unit node} of the hidden Variables, {id: step scope}). The edges
    are (tail, head, attributes, the step scopes of the uses they stand for).
    """
    hidden, variable_steps = variables
    edges, seen = [], {}
    for i, function in enumerate(functions):
        unit = scopes.unit.get(function.scope)
        if unit is None:
            node = f"f{i}"
            members[function.scope].append(f"\t{node} [label={_quote(function.name)} class=function "
                                           f"{_FUNCTION_STYLE}]\n")
            labels[node] = (function.name, "box", "#eeeeee", "black")
            operations.add(node)
            if scopes.column.get(function.scope) is not None:
                home[node] = scopes.column[function.scope]
        else:
            node = unit
            scopes.units[unit].ops += 1
        step = scopes.step.get(function.scope)
        pairs = [(hidden.get(id(x)) or node_id[id(x)], node, step or variable_steps[id(x)])
                 for x in function.inputs  # a unit reads what comes from outside it
                 if unit is None or x.creator is None or scopes.unit.get(x.creator.scope) != unit]
        pairs += [(node, hidden.get(id(y)) or node_id[id(y)], step or variable_steps[id(y)])
                  for y in _alive(function)]
        for tail, head, use in pairs:
            if tail == head:
                continue
            if unit is None and tail not in scopes.units and head not in scopes.units:
                edges.append((tail, head, {}, {use}))  # one per operand
            elif (tail, head) in seen:
                seen[tail, head][3].add(use)
            else:
                seen[tail, head] = (tail, head, {}, {use})
                edges.append(seen[tail, head])
    return edges


def _fold_shared_uses(edges, home, labels, scopes, members):
    """Replace the edges between a node outside the rows and the steps of a row, when it
    has them with several steps, by a marker in each step and one edge to the row (in
    ``edges``, in place); return the markers."""
    groups = defaultdict(list)  # (outside node, row, into the row?) -> edge indices
    for i, (tail, head, _, _) in enumerate(edges):
        if home.get(tail) is None and home.get(head) is not None:
            groups[tail, home[head].row, True].append(i)
        elif home.get(head) is None and home.get(tail) is not None:
            groups[head, home[tail].row, False].append(i)
    markers = set()
    for (outside, row, into), indices in groups.items():
        columns = list(dict.fromkeys(home[edges[i][1 if into else 0]] for i in indices))
        if len(columns) < 2:
            continue
        marker = {}
        for column in columns:
            marker[column] = node = f"m{len(labels)}"
            markers.add(node)
            text, shape, fill, font = labels[outside]
            labels[node] = labels[outside]
            home[node] = column
            drawn_in = column.row if scopes.unit.get(column.scopes[0]) else column.scopes[0]
            members[drawn_in].append(f"\t{node} [label={_quote(text)} class=marker shape={shape} "
                                     f'fillcolor="{fill}" fontcolor="{font}" {_MARKER_STYLE}]\n')
        used = set()
        for i in indices:
            tail, head, attributes, steps = edges[i]
            column = home[head if into else tail]
            edges[i] = (marker[column], head, attributes, steps) if into else (tail, marker[column],
                                                                              attributes, steps)
            used |= steps
        nearest = marker[columns[0 if into else -1]]  # the end of the row nearest to the outside node
        label = {"label": f"×{len(used)}", "row": row}
        edges.append((outside, nearest, dict(label, end="lhead"), set()) if into
                     else (nearest, outside, dict(label, end="ltail"), set()))
    return markers


def _fold_norms(functions, scopes):
    """{unit node: [‖grad‖ of the state each folded step passes on, in time order]}.

    A step's state is what Functions of another step of its row read from it; its norm
    is that of all those Variables together.
    """
    squares = defaultdict(dict)  # step scope -> {id: ‖grad‖²}
    for function in functions:
        for x in function.inputs:
            made = x.creator.scope if x.creator is not None else None
            if x.grad is not None and made is not None and scopes.is_state(made, function.scope):
                squares[scopes.step[made]][id(x)] = float(np.vdot(x.grad.data, x.grad.data))
    norms = {}
    for unit in scopes.units.values():
        if unit.folded:
            found = [math.sqrt(sum(squares[s].values())) for s in unit.column.scopes if squares[s]]
            if found:
                norms[unit.node] = found
    return norms


# --------------------------------------------------------------------- DOT text
def _quote(*lines):
    """A DOT string showing ``lines`` literally, one per line.

    In DOT's escString a backslash starts an escape (``\\n`` is a line break) and ``"``
    ends the string, so both are escaped; the string is always quoted, so any name, even
    ``<eos>`` (which would be an HTML label unquoted), shows as it is written.
    """
    return '"' + "\\n".join(line.replace("\\", "\\\\").replace('"', '\\"') for line in lines) + '"'


def _last(scope):
    return scope.rpartition("/")[2]


@functools.lru_cache(maxsize=1024)
def _describe(shape, dtype):
    """A Variable's shape and dtype as its label shows them: "(2, 3) float32"."""
    return f"{shape} {dtype}"


def _variable_line(node, v, kind, name, heat):
    """The DOT line of a Variable's node, and (name, shape, fill, font) for its markers."""
    shape, fill = _VARIABLE_STYLE[kind]
    lines = [] if name is None or name == "" else [str(name)]
    lines.append(_describe(v.shape, v.dtype))
    style = ""
    if kind == "input" and not v.requires_grad:
        style = ' style="filled,dashed"'
    font = "black"
    if id(v) in heat:
        norm, fill, font = heat[id(v)]
        lines.append(f"|grad| = {norm:.2e}")
    colours = f'fillcolor="{fill}"' + (f' fontcolor="{font}"' if id(v) in heat else "")
    line = f"\t{node} [label={_quote(*lines)} class={kind} shape={shape}{style} {colours}]\n"
    return line, (lines[0], shape, fill, font)


def _unit_line(unit, heat, time):
    """The DOT line of a collapsed scope's node, or of a column of folded steps.

    Folded steps show, under their labels, a strip of one cell per step (at most
    ``_STRIP_CELLS``, evenly spaced), coloured by the gradient norm of the state the step
    passes on, in the direction time runs: a vanishing gradient darkens back in time.
    """
    count = f"{unit.ops} op" + ("" if unit.ops == 1 else "s")
    if not unit.folded:
        return (f"\t{unit.node} [label={_quote(_last(unit.scope), count)} class=scope "
                f"tooltip={_quote(unit.scope)} {_SCOPE_STYLE}]\n")
    lines = [unit.column.label, f"{len(unit.column.scopes)} steps, {count}"]
    strip = ""
    if unit.node in heat:
        first, last, fills = heat[unit.node]
        lines.append(f"|grad| {first:.1e} … {last:.1e}")
        shown = np.unique(np.linspace(0, len(fills) - 1, min(len(fills), _STRIP_CELLS)).round().astype(int))
        cells = [f'<td width="7" height="12" bgcolor="{fills[i]}"></td>' for i in shown.tolist()]
        cells = "".join(cells) if time == "right" else "".join(f"<tr>{cell}</tr>" for cell in cells)
        strip = (f'<tr><td><table border="0" cellborder="0" cellspacing="0" cellpadding="0">'
                 f'{"<tr>" + cells + "</tr>" if time == "right" else cells}</table></td></tr>')
    rows = "".join(f"<tr><td>{html.escape(line)}</td></tr>" for line in lines)
    table = f'<table border="0" cellborder="0" cellspacing="0" cellpadding="2">{rows}{strip}</table>'
    return (f"\t{unit.node} [label=<{table}> class=folded tooltip={_quote(unit.scope)} "
            f"{_FOLD_STYLE}]\n")


def _heat_map(variables, fold_norms):
    """{id: (‖grad‖₂, fill colour, font colour)} for the Variables that have a gradient,
    and {unit node: (first norm, last norm, [fill of each step])} for folded steps.

    log₁₀‖grad‖ is mapped linearly from the smallest (black) to the largest (yellow) norm
    of the graph, folded steps included; a zero gradient gets the darkest colour, NaN or
    Inf a colour of its own.
    """
    graded = [v for v in variables if v.grad is not None]
    folded = [norm for norms in fold_norms.values() for norm in norms]
    norms = np.array([math.sqrt(np.vdot(v.grad.data, v.grad.data)) for v in graded] + folded)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(norms)
    scaled = np.isfinite(logs)  # not zero, NaN or Inf
    low, high = (logs[scaled].min(), logs[scaled].max()) if scaled.any() else (0.0, 0.0)
    t = np.where(scaled, (logs - low) / (high - low) if high > low else 1.0, 0.0)
    rgb = np.stack([np.interp(t, _HEAT_AT, _HEAT[:, channel]) for channel in range(3)], axis=1)
    fills = ["#{:02x}{:02x}{:02x}".format(*colour) for colour in rgb.round().astype(int).tolist()]
    colours = [(norm, fill, "white" if position < 0.5 else "black") if math.isfinite(norm)
               else (norm, _NONFINITE_FILL, "black")
               for norm, position, fill in zip(norms.tolist(), t.tolist(), fills, strict=True)]
    heat = {id(v): colour for v, colour in zip(graded, colours, strict=False)}
    start = len(graded)
    for node, unit_norms in fold_norms.items():
        steps = colours[start:start + len(unit_norms)]
        heat[node] = (steps[0][0], steps[-1][0], [fill for _, fill, _ in steps])
        start += len(unit_norms)
    return heat


def _add_cluster(body, scope, indent, children, members, numbers, cluster_id):
    """Append ``scope`` (a scope path, or a Row: the box around its steps) and, nested
    inside, its sub-scopes as ``subgraph cluster_N``."""
    cluster_id[scope] = name = f"cluster_{next(numbers)}"
    body.append(f"{indent}subgraph {name} {{\n")
    if isinstance(scope, unfolded.Row):
        body.append(f"{indent}\tgraph [{_ROW_STYLE}]\n")
    else:
        body.append(f"{indent}\tgraph [label={_quote(_last(scope))} tooltip={_quote(scope)} "
                    f"{_CLUSTER_STYLE}]\n")
    body += [indent + line for line in members[scope]]
    for child in children[scope]:  # nesting is as deep as the scopes: a few levels
        _add_cluster(body, child, indent + "\t", children, members, numbers, cluster_id)
    body.append(f"{indent}}}\n")


def _rank_lines(rows, home, rank, on_path):
    """The statements that put the nodes of the rows on their ranks, and keep the state's
    path straight (dot keeps the edges between the nodes of one ``group`` straight)."""
    same = defaultdict(list)
    for node, level in rank.items():
        same[level].append(node)
    lines = [f"\t{{rank=same; {'; '.join(nodes)}}}\n" for nodes in same.values() if len(nodes) > 1]
    group = {row: f"row{i}" for i, row in enumerate(rows)}
    return lines + [f"\t{node} [group={group[home[node].row]}]\n" for node in on_path]


def _order_rows(rows, children, members, edges, placed, time):
    """Add to ``members`` the invisible anchors that stack the rows in recording order (layer
    0, its reverse direction, layer 1, ...) from the bottom up (``time="down"``: from left to
    right).

    Which of two clusters stands above the other is dot's choice, made while it minimises
    edge crossings; it keeps the order of the flat edges between nodes outside clusters,
    though, and avoids crossings. So wherever several rows meet (at the top level, or in a
    cluster holding them), each cluster on the way to them gets an anchor there, before
    time starts; the anchors stand on one rank, chained by flat edges in the rows' order
    (in ``rankdir=LR`` a flat edge runs top to bottom), and each has an edge to the nodes
    where its cluster begins: those with no edge coming in, and those on the first rank of
    each of the first ``_ANCHORED_COLUMNS`` steps of its rows. Any other order of the
    clusters crosses those edges. This steers dot rather than binds it (a cluster's place
    is still its heuristic's choice), but it held on every drawing measured: see the
    row order in benchmarks/README.md.
    """
    home, rank = placed
    if len(rows) < 2:
        return
    parent = {child: container for container, kids in children.items() for child in kids}
    order = defaultdict(list)  # container -> its clusters on the way to the rows, in row order
    for row in rows:
        path = [row]
        while parent[path[-1]] is not None:
            path.append(parent[path[-1]])
        for container, child in zip([*path[1:], None], path, strict=True):
            if child not in order[container]:
                order[container].append(child)
    start = {}  # Column -> its first rank
    for node, level in rank.items():
        start[home[node]] = min(start.get(home[node], level), level)
    heads = {head for _, head in edges}
    begins = defaultdict(list)  # cluster -> the nodes where it begins
    for container, lines in members.items():
        clusters = [container]
        while clusters[-1] is not None:
            clusters.append(parent[clusters[-1]])
        for line in lines:  # each line declares one node: "\t<id> [...]"
            node = line.split(None, 1)[0]
            column = home.get(node)
            if (node not in heads if column is None else
                    column.position < _ANCHORED_COLUMNS and rank[node] == start[column]):
                for cluster in clusters[:-1]:
                    begins[cluster].append(node)
    for k, (container, clusters) in enumerate(order.items()):
        if len(clusters) < 2:
            continue
        anchors = {cluster: f"a{k}_{i}" for i, cluster in enumerate(clusters)}
        downward = clusters if time == "down" else clusters[::-1]  # a flat edge: left to right in TB
        lines = members[container]
        lines += [f'\t{anchors[c]} [label="" class=anchor {_ANCHOR_STYLE}]\n' for c in clusters]
        lines.append(f"\t{{rank=same; {' -> '.join(anchors[c] for c in downward)} [style=invis]}}\n")
        lines += [f"\t{anchors[c]} -> {node} [style=invis]\n" for c in clusters for node in begins[c]]


def _edge_line(tail, head, attributes, cluster_id, home, rank):
    """The DOT line of an edge.

    The nodes of the rows have their ranks (time); an edge into a row from outside does
    not rank the node outside, so that whole-sequence operations do not pull the steps
    apart; one between two rows does not rank either; one that runs against time (the
    state of a reverse direction) is written the other way round with ``dir=back``.
    """
    parts = []
    if tail in rank and head in rank:
        if home[tail].row is not home[head].row:
            parts.append("constraint=false")
        elif rank[tail] > rank[head]:
            tail, head = head, tail
            parts.append("dir=back")
    elif head in rank:
        parts.append("constraint=false")
    if "row" in attributes:  # a shared use: one edge between the outside node and the row
        end = attributes["end"]  # lhead or ltail: the end at the row's box, labelled with the count
        parts.append(f"{end}={cluster_id[attributes['row']]} {'head' if end == 'lhead' else 'tail'}label="
                     f"{_quote(attributes['label'])} {_SHARED_EDGE_STYLE}")
    return f"\t{tail} -> {head}" + (f" [{' '.join(parts)}]" if parts else "") + "\n"


def make_plan_dot(plan, *, backward=False, params=None):
    """The define-and-run graph of a ``tg.jit`` plan as a ``graphviz.Digraph``.

    One node per slot of the plan's environment (its array: shape and dtype; the replay's
    inputs as pentagons, the parameters it reads as hexagons, its outputs as double
    octagons) and one per step, in a cluster per recording scope as ``make_dot`` draws the
    tape. ``backward=True`` adds the backward steps (red), whose slots are gradients. The
    inputs and outputs are drawn even where no step touches them (a plan without steps, of
    a function returning its argument, is its input drawn as the output).
    """
    names = _param_names(params)
    inputs = dict(zip(plan.input_slots, [None] * plan.arguments + plan.externals, strict=True))
    leaves = {s: v for s, v in plan.leaves}
    outputs = set(plan.output_slots)
    steps = [(step, "#eeeeee") for step in plan.forward]
    if backward:
        steps += [(step, "#f4cccc") for step in plan.backward]
    members = defaultdict(list)
    edges, slots = [], set(plan.input_slots) | outputs
    for i, (step, fill) in enumerate(steps):
        function = getattr(step, "function", None)
        label = getattr(step, "label", None) or (type(step).__name__ if function is None else function.name)
        scope = getattr(step, "scope", getattr(function, "scope", None)) if fill == "#eeeeee" else None
        members[scope].append(f'\tf{i} [label={_quote(label)} shape=box style="rounded,filled" '
                              f'fillcolor="{fill}"]\n')
        edges += [(f"s{s}", f"f{i}") for s in step.reads()] + [(f"f{i}", f"s{s}") for s in step.writes()]
        slots.update(step.reads() + step.writes())
    for s in sorted(slots):
        v = inputs.get(s) if s in inputs else leaves.get(s)
        kind = ("output" if s in outputs else "parameter" if v is not None and v.requires_grad
                else "input" if s in inputs or s in leaves else "intermediate")
        shape, fill = _VARIABLE_STYLE[kind]
        name = names.get(id(v)) if v is not None else None
        label = _quote(*([name] if name else []), f"s{s} " + _describe(plan.shapes[s], plan.dtypes[s]))
        members[None].append(f'\ts{s} [label={label} shape={shape} fillcolor="{fill}"]\n')
    dot = graphviz.Digraph("plan", graph_attr={"fontname": "Helvetica", "fontsize": "11", "nslimit": "10"},
                           node_attr={"fontname": "Helvetica", "fontsize": "10", "style": "filled"},
                           edge_attr={"arrowsize": "0.7"})
    dot.body += members.pop(None, [])  # a function of no arguments returning None draws nothing
    for n, (scope, lines) in enumerate(sorted(members.items())):
        dot.body += [f"\tsubgraph cluster_plan{n} {{\n", f"\t\tlabel={_quote(scope)} {_CLUSTER_STYLE}\n"]
        dot.body += ["\t" + line for line in lines] + ["\t}\n"]
    dot.body += [f"\t{tail} -> {head}\n" for tail, head in edges]
    return dot
