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
import itertools
import math
import operator
from collections import defaultdict
from pathlib import Path

import graphviz
import numpy as np

from tensorgrad.autograd import reachable_functions
from tensorgrad.jit import Plan
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
_CLUSTER_STYLE = 'style=rounded color="#999999" fontcolor="#555555"'
# Matplotlib's "inferno" colour map at a few points: black-purple (tiny) to yellow (large).
_HEAT_AT = [0.0, 0.25, 0.5, 0.75, 1.0]
_HEAT = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], float)
_NONFINITE_FILL = "#00ffff"  # NaN or Inf: a colour outside the heat scale
_RENDER_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}
_SOURCE_SUFFIXES = (".dot", ".gv")


def make_dot(*outputs, params=None, show_grad=None, collapse=False):
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
    sit in its cluster; a leaf sits in the innermost cluster holding all its consumers.
    ``collapse=True`` draws each innermost scope as one node with its op count: edges come
    in from the Variables it reads and go out to the Variables it hands on; Variables made
    and used only inside are hidden.

    ``make_dot(plan)`` draws the plan of a ``tg.jit`` function instead (``fn.plan``): see
    :func:`make_plan_dot`.
    """
    if len(outputs) == 1 and isinstance(outputs[0], Plan):
        return make_plan_dot(outputs[0], params=params)
    if not outputs:
        raise TypeError("make_dot: pass at least one output Variable")
    for y in outputs:
        if not isinstance(y, Variable):
            raise TypeError(f"make_dot: outputs must be Variables, got {type(y).__name__}")
    names = _param_names(params)
    functions = sorted(reachable_functions(outputs), key=operator.attrgetter("seq"))
    variables = _variables(functions, outputs)
    output_ids = {id(y) for y in outputs}

    parents = _scope_parents(functions)
    collapsed = set(parents).difference(parents.values()) if collapse else set()
    where = _placement(functions, variables, output_ids, collapsed, parents)

    if show_grad is None:
        show_grad = any(variables[key].grad is not None for key in where)
    heat = _heat_map(variables[key] for key in where) if show_grad else {}

    # The DOT lines are written straight into the Digraph's body: the ids are plain names
    # and _quote escapes the labels, while Digraph.node() (~25 µs a call) would make a
    # 10⁵-node graph take seconds.
    node_id = {key: f"v{i}" for i, key in enumerate(variables)}
    members = defaultdict(list)  # scope path (None: top level) -> the lines of its nodes
    for key, scope in where.items():
        v = variables[key]
        kind = ("output" if key in output_ids else "parameter" if key in names
                else "input" if v.creator is None else "intermediate")
        members[scope].append(_variable_line(node_id[key], v, kind, names.get(key, v.name), heat))
    edges = _draw_functions(functions, collapsed, parents, node_id, where, members)

    # nslimit bounds the network-simplex passes that place the nodes: the shared weights of
    # a long unrolled sequence make many long edges, and unbounded, dot spends minutes on a
    # collapsed 50-step LSTM (seconds with the bound; small graphs come out the same).
    dot = graphviz.Digraph("tensorgrad",
                           graph_attr={"fontname": "Helvetica", "fontsize": "11", "nslimit": "10"},
                           node_attr={"fontname": "Helvetica", "fontsize": "10", "style": "filled"},
                           edge_attr={"arrowsize": "0.7"})
    dot.body += members[None]
    children = defaultdict(list)
    for scope, parent in parents.items():
        if scope not in collapsed:
            children[parent].append(scope)
    numbers = itertools.count()
    for scope in children[None]:
        _add_cluster(dot.body, scope, "\t", children, members, numbers)
    dot.body += [f"\t{tail} -> {head}\n" for tail, head in edges]
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


def _placement(functions, variables, output_ids, collapsed, parents):
    """{id: scope path (None: top level)} of every Variable drawn; hidden ones are absent.

    A Function's outputs sit in its scope; a leaf in the innermost scope holding all its
    consumers. Inside a collapsed scope a Variable is drawn only if it leaves the scope
    (read by a Function outside it, or passed to ``make_dot``), in the enclosing scope.
    """
    unset = object()
    leaf_scope = {}
    leaving = set()
    for function in functions:
        for x in function.inputs:
            if x.creator is None:
                known = leaf_scope.get(id(x), unset)
                leaf_scope[id(x)] = function.scope if known is unset else _common_scope(known, function.scope)
            elif x.creator.scope != function.scope:
                leaving.add(id(x))
    where = {}
    for key, v in variables.items():
        scope = leaf_scope.get(key) if v.creator is None else v.creator.scope
        if scope in collapsed:
            if v.creator is not None and key not in leaving and key not in output_ids:
                continue
            scope = parents[scope]
        where[key] = scope
    return where


def _draw_functions(functions, collapsed, parents, node_id, where, members):
    """Add the node of each Function, or of each collapsed scope, to ``members``; return the edges.

    A drawn Function has an edge from each input (one per operand) and to each live
    output. A collapsed scope has one edge from each Variable entering it and one to each
    Variable leaving it.
    """
    edges = []
    scope_node, scope_ops = {}, defaultdict(int)
    scope_edges = set()
    for i, function in enumerate(functions):
        scope = function.scope
        if scope in collapsed:
            node = scope_node.setdefault(scope, f"s{len(scope_node)}")
            scope_ops[scope] += 1
            pairs = [(node_id[id(x)], node) for x in function.inputs
                     if x.creator is None or x.creator.scope != scope]
            pairs += [(node, node_id[id(y)]) for y in _alive(function) if id(y) in where]
            for pair in pairs:
                if pair not in scope_edges:
                    scope_edges.add(pair)
                    edges.append(pair)
        else:
            node = f"f{i}"
            members[scope].append(f"\t{node} [label={_quote(function.name)} class=function "
                                  f"{_FUNCTION_STYLE}]\n")
            edges += [(node_id[id(x)], node) for x in function.inputs]
            edges += [(node, node_id[id(y)]) for y in _alive(function)]
    for scope, node in scope_node.items():
        count = scope_ops[scope]
        label = _quote(_last(scope), f"{count} op" + ("" if count == 1 else "s"))
        members[parents[scope]].append(f"\t{node} [label={label} class=scope tooltip={_quote(scope)} "
                                       f"{_SCOPE_STYLE}]\n")
    return edges


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
    shape, fill = _VARIABLE_STYLE[kind]
    lines = [] if name is None or name == "" else [str(name)]
    lines.append(_describe(v.shape, v.dtype))
    style = ""
    if kind == "input" and not v.requires_grad:
        style = ' style="filled,dashed"'
    colours = f'fillcolor="{fill}"'
    if id(v) in heat:
        norm, fill, font = heat[id(v)]
        lines.append(f"|grad| = {norm:.2e}")
        colours = f'fillcolor="{fill}" fontcolor="{font}"'
    return f"\t{node} [label={_quote(*lines)} class={kind} shape={shape}{style} {colours}]\n"


def _heat_map(variables):
    """{id: (‖grad‖₂, fill colour, font colour)} for the Variables that have a gradient.

    log₁₀‖grad‖ is mapped linearly from the smallest (black) to the largest (yellow) norm
    of the graph; a zero gradient gets the darkest colour, NaN or Inf a colour of its own.
    """
    graded = [v for v in variables if v.grad is not None]
    norms = np.array([math.sqrt(np.vdot(v.grad.data, v.grad.data)) for v in graded])
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(norms)
    scaled = np.isfinite(logs)  # not zero, NaN or Inf
    low, high = (logs[scaled].min(), logs[scaled].max()) if scaled.any() else (0.0, 0.0)
    t = np.where(scaled, (logs - low) / (high - low) if high > low else 1.0, 0.0)
    rgb = np.stack([np.interp(t, _HEAT_AT, _HEAT[:, channel]) for channel in range(3)], axis=1)
    fills = ["#{:02x}{:02x}{:02x}".format(*colour) for colour in rgb.round().astype(int).tolist()]
    heat = {}
    for v, norm, position, fill in zip(graded, norms.tolist(), t.tolist(), fills, strict=True):
        if math.isfinite(norm):
            heat[id(v)] = (norm, fill, "white" if position < 0.5 else "black")
        else:
            heat[id(v)] = (norm, _NONFINITE_FILL, "black")
    return heat


def _add_cluster(body, scope, indent, children, members, numbers):
    """Append ``scope`` and, nested inside, its sub-scopes as ``subgraph cluster_N``."""
    body.append(f"{indent}subgraph cluster_{next(numbers)} {{\n")
    body.append(f"{indent}\tgraph [label={_quote(_last(scope))} tooltip={_quote(scope)} {_CLUSTER_STYLE}]\n")
    body += [indent + line for line in members[scope]]
    for child in children[scope]:  # nesting is as deep as the scopes: a few levels
        _add_cluster(body, child, indent + "\t", children, members, numbers)
    body.append(f"{indent}}}\n")


def make_plan_dot(plan, *, backward=False, params=None):
    """The define-and-run graph of a ``tg.jit`` plan as a ``graphviz.Digraph``.

    One node per slot of the plan's environment (its array: shape and dtype; the replay's
    inputs as pentagons, the parameters it reads as hexagons, its outputs as double
    octagons) and one per step, in a cluster per recording scope as ``make_dot`` draws the
    tape. ``backward=True`` adds the backward steps (red), whose slots are gradients.
    """
    names = _param_names(params)
    inputs = dict(zip(plan.input_slots, [None] * plan.arguments + plan.externals, strict=True))
    leaves = {s: v for s, v in plan.leaves}
    outputs = set(plan.output_slots)
    steps = [(step, "#eeeeee") for step in plan.forward]
    if backward:
        steps += [(step, "#f4cccc") for step in plan.backward]
    members = defaultdict(list)
    edges, slots = [], set()
    for i, (step, fill) in enumerate(steps):
        function = getattr(step, "function", None)
        label = function.name if function is not None else type(step).__name__
        scope = getattr(function, "scope", None) if fill == "#eeeeee" else None
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
    dot.body += members.pop(None)
    for n, (scope, lines) in enumerate(sorted(members.items())):
        dot.body += [f"\tsubgraph cluster_plan{n} {{\n", f"\t\tlabel={_quote(scope)} {_CLUSTER_STYLE}\n"]
        dot.body += ["\t" + line for line in lines] + ["\t}\n"]
    dot.body += [f"\t{tail} -> {head}\n" for tail, head in edges]
    return dot
