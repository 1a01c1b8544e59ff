"""Rewrite Einsum nodes into Transpose / Reshape / MatMul (and ReduceSum).

Why: TensorRT parses Einsum only from 8.2 and with limits (8.5 rejects upper-case labels),
and other runtimes handle it poorly; MatMul and Transpose work everywhere.

Covers the batch-matmul family with one or two operands. For two operands each label is
  batch      - in both inputs and the output,
  contracted - in both inputs, not in the output,
  free       - in one input and the output,
  summed     - in one input only (removed first with ReduceSum).
Each operand is transposed to (batch..., free, contracted) / (batch..., contracted, free),
the free and contracted groups are merged into one axis each (Reshape with sizes from Shape
ops, so dynamic dims work; Unsqueeze/Squeeze only when every group has at most one label),
multiplied with MatMul (which also broadcasts size-1 batch dims), split back and transposed
to the output order. Ellipsis is supported where the operand ranks are known. Repeated
labels in one operand (diagonals), three or more operands and malformed equations raise
ValueError naming the equation. Ops are valid at every opset from 11 on.
"""

from __future__ import annotations

import string

import onnx

from ._graph import NodeBuilder, attr, is_op, rank, replace_nodes


def decompose_einsum(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a copy of `model` with every default-domain Einsum node replaced by MatMul etc."""
    return replace_nodes(model, lambda n: is_op(n, "Einsum"), _rewrite)


def parse_equation(equation: str, ranks: list[int | None]) -> tuple[list[str], str]:
    """Split an einsum equation into per-input label strings and the output labels.

    Ellipses become fresh single-letter labels (right-aligned, as broadcasting is); an implicit
    output (no "->") is the ellipsis labels followed by the labels used once, sorted.
    """
    eq = "".join(equation.split())
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ValueError(f"Einsum equation {equation!r} names {len(terms)} operands, node has {len(ranks)}")
    ellipsis: list[str] = []
    if "..." in eq:
        if any(r is None for t, r in zip(terms, ranks) if "..." in t):
            raise ValueError(f"Einsum equation {equation!r} uses '...' but an operand's rank is unknown")
        spare = [c for c in string.ascii_letters if c not in eq]
        widths = [r - (len(t) - 3) if "..." in t else 0 for t, r in zip(terms, ranks)]
        ellipsis = spare[: max(widths)]
        terms = [t.replace("...", "".join(ellipsis[len(ellipsis) - w :])) for t, w in zip(terms, widths)]
        rhs = rhs.replace("...", "".join(ellipsis))
    if not arrow:
        counts = "".join(terms)
        rhs = "".join(ellipsis) + "".join(sorted(c for c in set(counts) if counts.count(c) == 1 and c not in ellipsis))
    for t, r in zip([*terms, rhs], [*ranks, None]):
        if not t.isalpha() and t:
            raise ValueError(f"Einsum equation {equation!r}: labels must be letters, got {t!r}")
        if len(set(t)) != len(t):
            raise ValueError(f"Einsum equation {equation!r}: a repeated label in {t!r} (diagonal) is not supported")
        if r is not None and len(t) != r:
            raise ValueError(f"Einsum equation {equation!r}: term {t!r} does not match an operand of rank {r}")
    if set(rhs) - set("".join(terms)):
        raise ValueError(f"Einsum equation {equation!r}: output labels {rhs!r} not all in the inputs")
    return terms, rhs


def _rewrite(model: onnx.ModelProto, node: onnx.NodeProto, types: dict) -> list[onnx.NodeProto]:
    equation = attr(node, "equation")
    terms, out = parse_equation(equation, [rank(types, i) for i in node.input])
    if len(terms) > 2:
        raise ValueError(f"Einsum equation {equation!r}: only one or two operands are supported")
    b = NodeBuilder(model, node.name or "Einsum")
    names = list(node.input)
    for i, term in enumerate(terms):  # sum out labels no one else needs
        keep = set(out).union(*(terms[j] for j in range(len(terms)) if j != i))
        lone = [p for p, label in enumerate(term) if label not in keep]
        if lone:
            names[i] = b.reduce("ReduceSum", names[i], lone, keepdims=0)
            terms[i] = "".join(label for label in term if label in keep)
    if len(terms) == 1:
        _transpose(b, names[0], terms[0], out, result=node.output[0])
        return b.nodes

    (ta, tb), (a, c) = terms, names
    batch = [label for label in out if label in ta and label in tb]
    contracted = [label for label in ta if label in tb and label not in out]
    free_a = [label for label in ta if label not in tb]
    free_b = [label for label in tb if label not in ta]
    nb = len(batch)
    a = _transpose(b, a, ta, batch + free_a + contracted)
    c = _transpose(b, c, tb, batch + contracted + free_b)
    if max(len(free_a), len(contracted), len(free_b)) <= 1:
        # Every group has at most one label: give empty groups a size-1 axis, no Reshape needed.
        if not free_a:
            a = b.unsqueeze(a, [nb])
        if not contracted:
            a, c = b.unsqueeze(a, [nb + 1]), b.unsqueeze(c, [nb])
        if not free_b:
            c = b.unsqueeze(c, [nb + 1])
        product = b.op("MatMul", a, c)
        empty = [nb] * (not free_a) + [nb + 1] * (not free_b)
        if empty:
            product = b.squeeze(product, empty)
    else:
        shape_a, shape_c = b.op("Shape", a), b.op("Shape", c)
        a = _merge(b, a, shape_a, nb, [len(free_a), len(contracted)])
        c = _merge(b, c, shape_c, nb, [len(contracted), len(free_b)])
        product = b.op("MatMul", a, c)
        sizes = [b.const([0] * nb)] if nb else []  # Reshape's 0 keeps the (broadcast) batch dims
        if free_a:
            sizes.append(b.dims(shape_a, range(nb, nb + len(free_a))))
        if free_b:
            sizes.append(b.dims(shape_c, range(nb + len(contracted), nb + len(contracted) + len(free_b))))
        product = b.op("Reshape", product, b.op("Concat", *sizes, axis=0))
    _transpose(b, product, "".join(batch + free_a + free_b), out, result=node.output[0])
    return b.nodes


def _transpose(b: NodeBuilder, x: str, have, want, result: str | None = None) -> str:
    perm = [list(have).index(label) for label in want]
    if perm == list(range(len(perm))):
        return b.op("Identity", x, out=result) if result else x
    return b.op("Transpose", x, perm=perm, out=result)


def _merge(b: NodeBuilder, x: str, shape: str, nb: int, groups: list[int]) -> str:
    """Reshape (batch..., g0 axes..., g1 axes...) to (batch..., prod(g0), prod(g1))."""
    sizes, start = ([b.const([0] * nb)] if nb else []), nb
    for count in groups:
        if count == 0:
            sizes.append(b.const([1]))
        elif count == 1:
            sizes.append(b.dims(shape, [start]))
        else:  # ReduceProd without axes reduces everything, valid at every opset
            sizes.append(b.op("ReduceProd", b.dims(shape, range(start, start + count)), keepdims=1))
        start += count
    return b.op("Reshape", x, b.op("Concat", *sizes, axis=0))
